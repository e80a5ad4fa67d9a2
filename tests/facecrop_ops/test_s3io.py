"""S3 at the edge, against moto's server on 127.0.0.1: order, gone objects, bounded windows."""

import threading
import time

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
