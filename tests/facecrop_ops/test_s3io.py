"""S3 at the edge, against moto's server on 127.0.0.1: order, gone objects, bounded windows."""

import threading
import time
from unittest import mock

import pytest

from facecrop_dev.local_s3 import moto_server
from facecrop_ops.dataset.locations import S3Location
from facecrop_ops.s3io import S3Store, StorageError

BUCKET = "s3io-test"


@pytest.fixture(scope="module")
def s3():
    with moto_server() as server:
        server.upload(BUCKET, "k/", ((f"{i:03d}", bytes([i])) for i in range(40)))
        yield server


class Counting:
    """A client that counts calls, finished calls and the most running at once."""

    def __init__(self, client):
        self.client, self.calls, self.finished, self.running, self.most = client, 0, 0, 0, 0
        self.lock = threading.Lock()

    def __getattr__(self, name):
        real = getattr(self.client, name)
        if name not in ("get_object", "put_object"):
            return real

        def counted(*args, **kwargs):
            with self.lock:
                self.calls += 1
                self.running += 1
                self.most = max(self.most, self.running)
            try:
                time.sleep(0.01)
                return real(*args, **kwargs)
            finally:
                with self.lock:
                    self.running -= 1
                    self.finished += 1
        return counted


def test_get_many_keeps_order_marks_gone_objects_and_fetches_a_window_ahead_only(s3):
    client = Counting(s3.client())
    store = S3Store(client, threads=2)
    keys = [f"k/{i:03d}" for i in range(40)] + ["k/gone"]
    got = store.get_many(BUCKET, iter(keys))
    first = next(got)
    time.sleep(0.3)
    assert first == ("k/000", b"\x00") and client.calls <= 2 * 2 + 1  # not all 41 at once
    rest = list(got)
    assert [k for k, _ in rest] == keys[1:] and rest[-1] == ("k/gone", None)
    assert [d for _, d in rest[:-1]] == [bytes([i]) for i in range(1, 40)]
    assert client.most <= 2


def test_put_many_takes_items_as_they_come_and_bounds_uploads_in_flight(s3):
    client = Counting(s3.client())
    store = S3Store(client, threads=3)
    ahead = []  # items produced but not yet uploaded, each time the next one is asked for

    def items():
        for i in range(30):
            ahead.append(i - client.finished)
            yield f"up/{i:03d}", b"x" * i, "application/octet-stream"

    etags = store.put_many(BUCKET, items())
    assert sorted(etags) == [f"up/{i:03d}" for i in range(30)] and all(len(e) == 32 for e in etags.values())
    assert max(ahead) <= 2 * 3  # a window of uploads, never the whole stream held
    assert store.list(S3Location(BUCKET, "up/")) == [f"up/{i:03d}" for i in range(30)]


def test_listing_a_missing_bucket_names_it(s3):
    with pytest.raises(StorageError, match="bucket 'no-such-bucket-here' does not exist: check source_uri"):
        S3Store(s3.client()).objects(S3Location("no-such-bucket-here", ""), "source_uri")


def test_objects_carry_their_etag_and_size(s3):
    objs = S3Store(s3.client()).objects(S3Location(BUCKET, "k/00"))
    assert [o.key for o in objs] == [f"k/{i:03d}" for i in range(10)]
    assert all(o.size == 1 and len(o.etag) == 32 for o in objs)


def test_folders_list_one_level_and_iter_objects_resumes_after_a_key(s3):
    s3.upload(BUCKET, "tree/", [("a/1.jpg", b"1"), ("a/2.jpg", b"2"), ("b/c/3.jpg", b"3"), ("top.csv", b"t")])
    store = S3Store(s3.client())
    prefixes, objects = store.folders(S3Location(BUCKET, "tree/"))
    assert prefixes == ["tree/a/", "tree/b/"] and [o.key for o in objects] == ["tree/top.csv"]
    assert [o.key for o in store.iter_objects(S3Location(BUCKET, "tree/"), start_after="tree/a/1.jpg")] == [
        "tree/a/2.jpg", "tree/b/c/3.jpg", "tree/top.csv"]


def test_a_fast_listing_client_keeps_timestamps_as_text_and_leaves_other_clients_alone(s3):
    import boto3

    from facecrop_ops.s3io import fast_listing

    session = boto3.session.Session()
    kwargs = {"endpoint_url": s3.endpoint_url, "region_name": "us-east-1", "aws_access_key_id": s3.access_key,
              "aws_secret_access_key": s3.secret_key}
    fast, plain = fast_listing(session.client("s3", **kwargs)), session.client("s3", **kwargs)
    listed = fast.list_objects_v2(Bucket=BUCKET, Prefix="k/00")["Contents"]
    assert isinstance(listed[0]["LastModified"], str) and listed[0]["Key"] == "k/000"
    assert not isinstance(plain.list_objects_v2(Bucket=BUCKET, Prefix="k/00")["Contents"][0]["LastModified"], str)
    assert [o.key for o in S3Store(fast).objects(S3Location(BUCKET, "k/00"))] == [f"k/{i:03d}" for i in range(10)]


def test_get_unless_sends_nothing_while_the_object_is_unchanged(s3):
    store = S3Store(s3.client())
    etag = store.put(BUCKET, "same.json", b"{}", "application/json")
    assert store.get_unless(BUCKET, "same.json", None) == (b"{}", etag)
    assert store.get_unless(BUCKET, "same.json", etag) == (None, etag)
    changed = store.put(BUCKET, "same.json", b"[]", "application/json")
    assert store.get_unless(BUCKET, "same.json", etag) == (b"[]", changed)
    assert store.get_unless(BUCKET, "never.json", etag) == (None, None)


def test_a_writer_streams_an_object_in_parts_and_a_failed_write_leaves_none(s3):
    from facecrop_ops.s3io import PART_BYTES

    store = S3Store(s3.client())
    chunk = bytes(range(256)) * 4096  # 1 MiB
    with store.writer(BUCKET, "big.csv", "text/csv") as out:
        for _ in range(PART_BYTES // len(chunk) * 2 + 3):
            out.write(chunk)
        assert out.parts  # parts went up while it was being written
    body = store.open(BUCKET, "big.csv").read()
    assert len(body) == len(chunk) * (PART_BYTES // len(chunk) * 2 + 3) and body[: len(chunk)] == chunk
    with store.writer(BUCKET, "small.csv", "text/csv", {"through": "x"}) as out:
        out.write(b"a,b\n")
    assert store.get(BUCKET, "small.csv") == b"a,b\n" and store.metadata(BUCKET, "small.csv") == {"through": "x"}

    with pytest.raises(RuntimeError, match="boom"), store.writer(BUCKET, "half.csv", "text/csv") as out:
        for _ in range(PART_BYTES // len(chunk) + 1):
            out.write(chunk)
        raise RuntimeError("boom")
    assert store.open(BUCKET, "half.csv") is None
    assert not s3.client().list_multipart_uploads(Bucket=BUCKET).get("Uploads")

    # Completing fails (S3 refuses it): the upload is aborted, no part is left behind.
    writer = store.writer(BUCKET, "unfinished.csv", "text/csv")
    for _ in range(PART_BYTES // len(chunk) + 1):
        writer.write(chunk)
    with mock.patch.object(store.client, "complete_multipart_upload", side_effect=RuntimeError("refused")), \
            pytest.raises(RuntimeError, match="refused"):
        writer.close()
    # A writer dropped unfinished is aborted, never completed with what it held.
    dropped = store.writer(BUCKET, "dropped.csv", "text/csv")
    for _ in range(PART_BYTES // len(chunk) + 1):
        dropped.write(chunk)
    del dropped
    assert store.open(BUCKET, "unfinished.csv") is None and store.open(BUCKET, "dropped.csv") is None
    assert not s3.client().list_multipart_uploads(Bucket=BUCKET).get("Uploads")
