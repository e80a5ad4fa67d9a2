"""S3 at the edge: a boto3 client from an Airflow connection and concurrent transfers.

The client comes from the Amazon provider's S3Hook, so credentials, region and
`endpoint_url` (MinIO, moto's server, a VPC endpoint) live in the Airflow connection, never
in code. boto3 clients are thread-safe; downloads and uploads each run in a thread pool, and
the client's connection pool holds a connection for every thread of both.
"""

from __future__ import annotations

import io
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from itertools import islice
from typing import Any, NamedTuple

from facecrop_ops.dataset.locations import S3Location

log = logging.getLogger(__name__)


class StorageError(RuntimeError):
    """S3 refused something the run needs in a way a retry cannot fix (no such bucket, access
    denied); the message says what to check. Throttling, 5xx answers, timeouts and dropped
    connections are not StorageErrors: after boto3's own retries they propagate as they are,
    so the task fails and Airflow retries it."""


class ObjectTooLarge(ValueError):
    """An object bigger than the caller may hold: refused before its body is read."""

    def __init__(self, key: str, size: int) -> None:
        super().__init__(f"{key} is {size} bytes")
        self.size = size


def client_for(aws_conn_id: str, threads: int) -> Any:
    """A boto3 S3 client on the Airflow connection. A connection id that names no connection is
    refused: the Amazon provider would silently fall back to boto3's default credentials (a
    worker's IAM role), reaching buckets with a role nobody chose."""
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        BaseHook.get_connection(aws_conn_id)
    except AirflowNotFoundException:
        raise StorageError(f"aws_conn_id {aws_conn_id!r} names no Airflow connection: create it (Admin > Connections, "
                           "type aws; with no login it uses the workers' IAM role) or set aws_conn_id to one that "
                           "exists") from None
    # One client serves a task's downloads and uploads at once: a connection for each of their
    # threads, or urllib3 drops and reopens them ("Connection pool is full").
    config = {"max_pool_connections": 2 * threads, "retries": {"max_attempts": 5, "mode": "standard"}}
    return fast_listing(S3Hook(aws_conn_id=aws_conn_id, config=config).get_conn())


def fast_listing(client: Any) -> Any:
    """Keep timestamps as the text S3 sent: nothing here reads LastModified, and turning it into
    a datetime was three quarters of the time botocore spent on each listing page (1,000 keys).
    The client's endpoint gets a parser factory of its own with that one default changed: the
    session's factory, which other clients share, is left as it is."""
    from botocore.parsers import ResponseParserFactory

    endpoint = getattr(client, "_endpoint", None)
    if endpoint is not None and hasattr(endpoint, "_response_parser_factory"):
        factory = ResponseParserFactory()
        factory.set_parser_defaults(timestamp_parser=str)
        endpoint._response_parser_factory = factory
    return client


def _code(exc: Exception) -> str:
    """botocore's error code ("NoSuchKey", "AccessDenied", "404"...); "" for other errors."""
    return getattr(exc, "response", {}).get("Error", {}).get("Code", "")


NOT_FOUND = ("404", "NoSuchKey", "NotFound")
_NO_BUCKET = ("NoSuchBucket",)
_REFUSED = ("AccessDenied", "403", "InvalidAccessKeyId", "SignatureDoesNotMatch", "AllAccessDisabled")


@contextmanager
def _refusals_are_final(bucket: str, what: str) -> Iterator[None]:
    """Turn what a retry cannot fix (no such bucket, access refused) into a StorageError that
    names the fix; let everything else through as it is, for a retry."""
    try:
        yield
    except Exception as exc:
        code = _code(exc)
        if code in _NO_BUCKET:
            raise StorageError(f"bucket {bucket!r} does not exist: check {what} and the connection's endpoint") from exc
        if code in _REFUSED:
            raise StorageError(f"access to bucket {bucket!r} was refused ({code}): check the credentials of the aws connection") from exc
        raise


class S3Object(NamedTuple):
    key: str
    etag: str
    size: int


# Pauses before the downloads that failed are tried again (after boto3's own attempts); the
# DAG's tasks take FACECROP_S3_RETRY_DELAYS.
RETRY_DELAYS = (2.0, 10.0, 30.0)


class S3Store:
    def __init__(self, client: Any, threads: int = 16, retry_delays: tuple[float, ...] = RETRY_DELAYS) -> None:
        self.client = client
        self.threads = threads
        self.retry_delays = retry_delays

    def iter_objects(self, loc: S3Location, what: str = "the URI", start_after: str = "") -> Iterator[S3Object]:
        """Every object under the location (whose key sorts after `start_after`, given one),
        with its ETag and size, in key order, a page at a time: nothing holds the listing."""
        extra = {"StartAfter": start_after} if start_after else {}
        with _refusals_are_final(loc.bucket, what):
            for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=loc.bucket, Prefix=loc.prefix, **extra):
                for o in page.get("Contents", []):
                    yield S3Object(o["Key"], o.get("ETag", "").strip('"'), o.get("Size", 0))

    def objects(self, loc: S3Location, what: str = "the URI", start_after: str = "") -> list[S3Object]:
        """iter_objects as a list, for listings known to be small."""
        return list(self.iter_objects(loc, what, start_after))

    def list(self, loc: S3Location, what: str = "the URI", start_after: str = "") -> list[str]:
        """The key of every object under the location (after `start_after`), in key order."""
        return [o.key for o in self.iter_objects(loc, what, start_after)]

    def folders(self, loc: S3Location, what: str = "the URI") -> tuple[list[str], list[S3Object]]:
        """One level of the location: the prefixes of its sub-folders and the objects directly in it."""
        prefixes, objects = [], []
        with _refusals_are_final(loc.bucket, what):
            for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=loc.bucket, Prefix=loc.prefix,
                                                                              Delimiter="/"):
                prefixes.extend(p["Prefix"] for p in page.get("CommonPrefixes", []))
                objects.extend(S3Object(o["Key"], o.get("ETag", "").strip('"'), o.get("Size", 0))
                               for o in page.get("Contents", []))
        return prefixes, objects

    def open(self, bucket: str, key: str) -> Any:
        """The object as a binary stream read as it goes (a manifest or CSV of any size is never
        held whole); None when there is no such object."""
        with _refusals_are_final(bucket, "the run's URIs"):
            try:
                return self.client.get_object(Bucket=bucket, Key=key)["Body"]
            except Exception as exc:
                if _code(exc) in NOT_FOUND:
                    return None
                raise

    def writer(self, bucket: str, key: str, content_type: str, metadata: dict[str, str] | None = None) -> MultipartWriter:
        """A binary stream that uploads as it is written (multipart past PART_BYTES), so an object
        of any size is written without being held; it is there once the stream is closed."""
        return MultipartWriter(self, bucket, key, content_type, metadata)

    def get(self, bucket: str, key: str) -> bytes:
        with _refusals_are_final(bucket, "the run's URIs"):
            return self.client.get_object(Bucket=bucket, Key=key)["Body"].read()

    def get_if_exists(self, bucket: str, key: str, first_bytes: int | None = None, etag: str | None = None,
                      max_bytes: int | None = None) -> bytes | None:
        """The object (or its first bytes, e.g. a CSV's header), or None when there is none
        (or, given `etag`, when it is no longer that version): one request where exists()
        then get() would take two. Given `max_bytes`, a larger object raises ObjectTooLarge
        before its body is read."""
        extra = {"Range": f"bytes=0-{first_bytes - 1}"} if first_bytes else {}
        if etag:
            extra["IfMatch"] = f'"{etag}"'
        with _refusals_are_final(bucket, "the run's URIs"):
            try:
                answer = self.client.get_object(Bucket=bucket, Key=key, **extra)
                if max_bytes is not None and answer.get("ContentLength", 0) > max_bytes:
                    answer["Body"].close()
                    raise ObjectTooLarge(key, answer["ContentLength"])
                return answer["Body"].read()
            except ObjectTooLarge:
                raise
            except Exception as exc:
                if _code(exc) in NOT_FOUND or _code(exc) in ("PreconditionFailed", "412"):
                    return None
                if _code(exc) == "InvalidRange":  # a ranged read of an empty object
                    return b""
                raise

    def get_unless(self, bucket: str, key: str, etag: str | None) -> tuple[bytes | None, str | None]:
        """(bytes, ETag) of the object; (None, `etag`) while it is still that version (nothing is
        sent); (None, None) when there is no such object."""
        extra = {"IfNoneMatch": f'"{etag}"'} if etag else {}
        with _refusals_are_final(bucket, "the run's URIs"):
            try:
                answer = self.client.get_object(Bucket=bucket, Key=key, **extra)
                return answer["Body"].read(), answer["ETag"].strip('"')
            except Exception as exc:
                if _code(exc) in ("304", "NotModified"):
                    return None, etag
                if _code(exc) in NOT_FOUND:
                    return None, None
                raise

    def put(self, bucket: str, key: str, data: bytes, content_type: str, metadata: dict[str, str] | None = None) -> str:
        """Upload; returns the new object's ETag."""
        extra = {"Metadata": metadata} if metadata else {}
        with _refusals_are_final(bucket, "dest_uri"):
            return self.client.put_object(Bucket=bucket, Key=key, Body=data, ContentType=content_type, **extra)["ETag"].strip('"')

    def put_text(self, bucket: str, key: str, text: str, content_type: str = "text/csv") -> None:
        self.put(bucket, key, text.encode(), content_type)

    def metadata(self, bucket: str, key: str) -> dict[str, str] | None:
        """The object's user metadata (x-amz-meta-*), or None when there is no such object."""
        with _refusals_are_final(bucket, "dest_uri"):
            try:
                return self.client.head_object(Bucket=bucket, Key=key).get("Metadata", {})
            except Exception as exc:
                if _code(exc) in NOT_FOUND:
                    return None
                raise

    def delete_many(self, bucket: str, keys: list[str]) -> None:
        """Delete objects, a thousand per request (S3's most)."""
        for start in range(0, len(keys), 1000):
            batch = [{"Key": k} for k in keys[start : start + 1000]]
            with _refusals_are_final(bucket, "dest_uri"):
                answer = self.client.delete_objects(Bucket=bucket, Delete={"Objects": batch, "Quiet": True})
            errors = answer.get("Errors") or []
            if any(e.get("Code") in _REFUSED for e in errors):
                raise StorageError(f"deleting in bucket {bucket!r} was refused ({errors[0]['Code']}): give the aws connection "
                                   "s3:DeleteObject on dest_uri, where the faces of deleted photos are removed")
            if errors:
                raise RuntimeError(f"S3 could not delete {len(errors)} object(s), first: {errors[0]}")

    def _window(self) -> int:
        return self.threads * 2

    def get_many(
        self, bucket: str, keys: Iterable[str], on_done: Callable[[int], None] | None = None,
        failed: list[tuple[str, Exception]] | None = None, etags: Mapping[str, str] | None = None,
    ) -> Iterator[tuple[str, bytes | None]]:
        """Download concurrently, in input order (keys tried again come last): (key, bytes), or
        (key, None) for an object that is gone. At most a window of downloads is held at once, so memory does not grow
        with the number of keys. Refusals (no bucket, access denied) raise at once. Given
        `etags`, a key is read only while it is that version (else None, as for a gone one).

        Given `failed`, a key S3 keeps failing after boto3's own attempts (throttling, 5xx, a
        dropped connection) does not end the stream: it is set aside and tried again after
        the others, `retry_delays` apart (a throttled prefix recovers in seconds to minutes);
        what still fails then is appended to `failed` and not yielded. Without it the first
        such failure raises, as a task's retry would redo everything anyway."""

        def fetch(key: str) -> bytes | None | Exception:
            try:
                return self.get_if_exists(bucket, key, etag=(etags or {}).get(key))
            except StorageError:
                raise
            except Exception as exc:  # noqa: BLE001 - transient after boto3's retries: set aside
                if failed is None:
                    raise
                return exc

        later: dict[str, Exception] = {}
        for round_, delay in enumerate((0.0, *self.retry_delays)):
            if round_:
                if not later:
                    break
                log.warning("%d download(s) failed after boto3's retries (e.g. %s: %s); trying them again in %.0f s",
                            len(later), next(iter(later)), next(iter(later.values())), delay)
                time.sleep(delay)
            todo, later = (keys if round_ == 0 else list(later)), {}
            for key, result in self._fetch_window(fetch, todo):
                if isinstance(result, Exception):
                    later[key] = result
                    continue
                if on_done:
                    on_done(1)
                yield key, result
        if later:
            assert failed is not None
            failed.extend(later.items())

    def _fetch_window(self, fetch: Callable[[str], Any], keys: Iterable[str]) -> Iterator[tuple[str, Any]]:
        with ThreadPoolExecutor(self.threads, thread_name_prefix="s3-get") as pool:
            todo = iter(keys)
            pending = deque((key, pool.submit(fetch, key)) for key in islice(todo, self._window()))
            while pending:
                key, future = pending.popleft()
                result = future.result()
                pending.extend((k, pool.submit(fetch, k)) for k in islice(todo, 1))
                yield key, result

    def put_many(self, bucket: str, items: Iterable[tuple[str, bytes, str]]) -> dict[str, str]:
        """Upload (key, bytes, content type) items concurrently, a window at a time, as `items`
        produces them; returns each key's new ETag. The first failure raises once the uploads
        in flight are done."""
        etags: dict[str, str] = {}
        with ThreadPoolExecutor(self.threads, thread_name_prefix="s3-put") as pool:
            pending: deque[tuple[str, Future[str]]] = deque()
            for key, data, ctype in items:
                pending.append((key, pool.submit(self.put, bucket, key, data, ctype)))
                while len(pending) >= self._window():
                    key_done, future = pending.popleft()
                    etags[key_done] = future.result()
            for key_done, future in pending:
                etags[key_done] = future.result()
        return etags


PART_BYTES = 16 * 1024 * 1024  # S3 takes 5 MB to 5 GB a part and 10,000 parts: 160 GB an object


class MultipartWriter(io.RawIOBase):
    """Writes an object part by part as bytes come: one PutObject when it stays under a part,
    else a multipart upload, aborted if the writing fails (no half object is ever visible)."""

    def __init__(self, store: S3Store, bucket: str, key: str, content_type: str, metadata: dict[str, str] | None) -> None:
        super().__init__()
        self.store, self.bucket, self.key = store, bucket, key
        self.extra: dict[str, Any] = {"ContentType": content_type, **({"Metadata": metadata} if metadata else {})}
        self.buffer = bytearray()
        self.upload_id: str | None = None
        self.parts: list[dict[str, Any]] = []
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self.buffer += data
        self.size += len(data)
        while len(self.buffer) >= PART_BYTES:
            self._part(bytes(self.buffer[:PART_BYTES]))
            del self.buffer[:PART_BYTES]
        return len(data)

    def _part(self, data: bytes) -> None:
        client = self.store.client
        with _refusals_are_final(self.bucket, "dest_uri"):
            if self.upload_id is None:
                self.upload_id = client.create_multipart_upload(Bucket=self.bucket, Key=self.key, **self.extra)["UploadId"]
            number = len(self.parts) + 1
            answer = client.upload_part(Bucket=self.bucket, Key=self.key, UploadId=self.upload_id, PartNumber=number, Body=data)
            self.parts.append({"PartNumber": number, "ETag": answer["ETag"]})

    def close(self) -> None:
        """Finish the object; if that fails, abort the upload (no parts left behind) and raise."""
        if self.closed:
            return
        try:
            if self.upload_id is None:
                self.store.put(self.bucket, self.key, bytes(self.buffer), self.extra["ContentType"], self.extra.get("Metadata"))
            else:
                if self.buffer:
                    self._part(bytes(self.buffer))
                with _refusals_are_final(self.bucket, "dest_uri"):
                    self.store.client.complete_multipart_upload(Bucket=self.bucket, Key=self.key, UploadId=self.upload_id,
                                                                MultipartUpload={"Parts": self.parts})
        except BaseException:
            self.abort()
            raise
        self.buffer = bytearray()
        super().close()

    def abort(self) -> None:
        """Give up: nothing of this object is written."""
        if self.closed:
            return
        self.buffer = bytearray()
        super().close()
        if self.upload_id is not None:
            self.store.client.abort_multipart_upload(Bucket=self.bucket, Key=self.key, UploadId=self.upload_id)

    def __del__(self) -> None:
        """A writer dropped without `with`, close() or abort() was not finished by its owner:
        abort it (io's default would complete it, publishing whatever was buffered)."""
        if not self.closed:
            self.abort()

    def __exit__(self, kind: Any, value: Any, trace: Any) -> None:
        if kind is None:
            self.close()
        else:
            self.abort()
