"""S3 at the edge: a boto3 client from an Airflow connection and concurrent transfers.

The client comes from the Amazon provider's S3Hook, so credentials, region and
`endpoint_url` (MinIO, moto's server, a VPC endpoint) live in the Airflow connection, never
in code. boto3 clients are thread-safe; transfers run in a thread pool sized to the
client's connection pool.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from .locations import S3Location

log = logging.getLogger(__name__)


class StorageError(RuntimeError):
    """S3 refused something the run needs (missing bucket, no access); the message says what."""


def client_for(aws_conn_id: str, threads: int) -> Any:
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    hook = S3Hook(aws_conn_id=aws_conn_id, config={"max_pool_connections": threads, "retries": {"max_attempts": 5, "mode": "standard"}})
    return hook.get_conn()


def _code(exc: Exception) -> str:
    """botocore's error code ("NoSuchKey", "AccessDenied", "404"...); "" for other errors."""
    return getattr(exc, "response", {}).get("Error", {}).get("Code", "")


def _explain(exc: Exception, bucket: str, what: str) -> StorageError:
    code = _code(exc)
    if code in ("NoSuchBucket",):
        return StorageError(f"bucket {bucket!r} does not exist: check {what} and the connection's endpoint")
    if code in ("AccessDenied", "403", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
        return StorageError(f"access to bucket {bucket!r} was refused ({code}): check the credentials of the aws connection")
    return StorageError(f"S3 error on bucket {bucket!r} ({code or type(exc).__name__}): {exc}")


class S3Store:
    def __init__(self, client: Any, threads: int = 16) -> None:
        self.client = client
        self.threads = threads

    def list(self, loc: S3Location, what: str = "the URI") -> list[str]:
        """The key of every object under the location."""
        out = []
        try:
            for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=loc.bucket, Prefix=loc.prefix):
                out.extend(obj["Key"] for obj in page.get("Contents", []))
        except Exception as exc:  # botocore's ClientError and connection errors
            raise _explain(exc, loc.bucket, what) from exc
        return out

    def get(self, bucket: str, key: str) -> bytes:
        return self.client.get_object(Bucket=bucket, Key=key)["Body"].read()

    def get_if_exists(self, bucket: str, key: str, first_bytes: int | None = None) -> bytes | None:
        """The object (or its first bytes, e.g. a CSV's header), or None when there is none:
        one request where exists() then get() would take two."""
        extra = {"Range": f"bytes=0-{first_bytes - 1}"} if first_bytes else {}
        try:
            return self.client.get_object(Bucket=bucket, Key=key, **extra)["Body"].read()
        except Exception as exc:
            if _code(exc) in ("404", "NoSuchKey", "NotFound"):
                return None
            raise

    def put(self, bucket: str, key: str, data: bytes, content_type: str) -> None:
        self.client.put_object(Bucket=bucket, Key=key, Body=data, ContentType=content_type)

    def put_text(self, bucket: str, key: str, text: str, content_type: str = "text/csv") -> None:
        self.put(bucket, key, text.encode(), content_type)

    def get_many(self, bucket: str, keys: list[str], on_done: Callable[[int], None] | None = None) -> Iterator[tuple[str, bytes | Exception]]:
        """Download concurrently; yields (key, bytes) or (key, the error) in input order."""

        def fetch(key: str) -> bytes | Exception:
            try:
                return self.get(bucket, key)
            except Exception as exc:  # recorded per photo; the shard goes on
                return exc

        with ThreadPoolExecutor(self.threads, thread_name_prefix="s3-get") as pool:
            for key, result in zip(keys, pool.map(fetch, keys)):
                if on_done:
                    on_done(1)
                yield key, result

    def put_many(self, bucket: str, items: Iterable[tuple[str, bytes, str]]) -> int:
        """Upload (key, bytes, content type) items concurrently; raises the first failure after
        all finished (the task's retry then redoes the shard)."""
        with ThreadPoolExecutor(self.threads, thread_name_prefix="s3-put") as pool:
            futures = [pool.submit(self.put, bucket, key, data, ctype) for key, data, ctype in items]
            errors = [exc for exc in (f.exception() for f in futures) if exc is not None]
        if errors:
            raise StorageError(f"{len(errors)} of {len(futures)} uploads failed, first: {errors[0]}")
        return len(futures)
