"""The `crop_shard` task: idempotent shards, photos gone since the plan, throttled downloads."""


import pytest

from facecrop_ops import tasks
from facecrop_ops.dataset import manifest
from facecrop_ops.s3io import S3Store
from facecrop_ops.tasks.crop import GONE
from tests.facecrop_ops.tasks.helpers import RUN, RUN_DIR, keys, params


def test_a_finished_shard_is_not_redone_and_a_redone_shard_writes_the_same_bytes(store, bucket, s3):
    refs = tasks.plan(params(bucket), RUN, store)
    first = tasks.crop_shard(params(bucket), RUN, refs[0], store, workers=1)
    faces = [k for k in keys(store, bucket, "out/") if "/faces/" in k]
    assert len(faces) == first["photos"] - first["errors"]
    head = s3.client().head_object(Bucket=bucket, Key=faces[0])
    assert head["ContentType"] == "image/jpeg"
    before = {k: store.get(bucket, k) for k in faces}
    stamp = {k: s3.client().head_object(Bucket=bucket, Key=k)["LastModified"] for k in faces}

    assert tasks.crop_shard(params(bucket), RUN, refs[0], store, workers=1) == first  # retry after success
    assert {k: s3.client().head_object(Bucket=bucket, Key=k)["LastModified"] for k in faces} == stamp

    s3.client().delete_object(Bucket=bucket, Key=RUN_DIR + f"shards/{refs[0]['plan']}/00000.manifest.csv")  # died before its mark
    assert tasks.crop_shard(params(bucket), RUN, refs[0], store, workers=1) == first
    assert {k: store.get(bucket, k) for k in faces} == before


def test_a_photo_deleted_after_planning_is_an_error_row_and_its_csv_row_is_rejected(store, bucket, s3):
    p = params(bucket, photos_per_shard=100)
    (ref,) = tasks.plan(p, RUN, store)
    s3.client().delete_object(Bucket=bucket, Key="raw/train/images/000001_male_White_47/mask2.jpg")
    summary = tasks.crop_shard(p, RUN, ref, store, workers=1)
    assert summary["errors"] == 3
    tasks.publish(p, RUN, store)
    rows = {r.source: r for r in manifest.loads(store.get(bucket, RUN_DIR + "manifest.csv").decode())}
    assert rows["train/images/000001_male_White_47/mask2.jpg"].error == GONE
    rejects = store.get(bucket, RUN_DIR + "rejects.csv").decode()
    assert f"train/images/000001_male_White_47/mask2.jpg,photo unreadable: {GONE}" in rejects


class PhotosThrottled:
    """An S3 client whose photo downloads answer 503 SlowDown (after boto3's retries gave up)."""

    def __init__(self, client):
        self.client = client

    def __getattr__(self, name):
        real = getattr(self.client, name)

        def get_object(**kwargs):
            from botocore.exceptions import ClientError

            if "/images/" in kwargs["Key"]:
                raise ClientError({"Error": {"Code": "SlowDown", "Message": "Please reduce your request rate."}}, name)
            return real(**kwargs)
        return get_object if name == "get_object" else real


def test_a_throttled_download_fails_the_task_for_a_retry_instead_of_recording_errors(store, bucket, s3):
    p = params(bucket, photos_per_shard=100)
    (ref,) = tasks.plan(p, RUN, store)
    photos_throttled = PhotosThrottled(s3.client())
    with pytest.raises(RuntimeError, match="25 photo.s. could not be downloaded after every retry.*SlowDown"):
        tasks.crop_shard(p, RUN, ref, S3Store(photos_throttled, threads=4, retry_delays=(0.1,)), workers=1)
    assert not store.get_if_exists(bucket, RUN_DIR + f"shards/{ref['plan']}/00000.manifest.csv")  # not done: retried
