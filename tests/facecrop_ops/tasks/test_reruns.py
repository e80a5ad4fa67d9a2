"""Runs after runs, through every task: cleared runs, incremental reruns, settings changes, stale faces."""

import json

from facecrop_dev import samples
from facecrop_ops import tasks
from facecrop_ops.dataset import manifest
from facecrop_ops.s3io import S3Store
from tests.facecrop_ops.tasks.helpers import RUN, full_run, keys, manifest_of, params


def test_a_cleared_run_over_a_changed_bucket_plans_anew_and_trusts_no_old_done_mark(store, bucket, s3):
    p = params(bucket)
    old = tasks.plan(p, RUN, store)
    for ref in old:
        tasks.crop_shard(p, RUN, ref, store, workers=1)
    assert tasks.plan(p, RUN, store) == old  # nothing changed: the same plan, its shards stay done

    client = s3.client()
    moved = "train/images/000001_male_White_47/normal.jpg"
    replacement = client.get_object(Bucket=bucket, Key="raw/train/images/000002_male_White_51/normal.jpg")["Body"].read()
    client.put_object(Bucket=bucket, Key="raw/" + moved, Body=replacement)  # same key, other photo
    new = tasks.plan(p, RUN, store)
    assert new[0]["plan"] != old[0]["plan"] and len(new) == len(old)
    for ref in new:
        assert tasks.crop_shard(p, RUN, ref, store, workers=1)["photos"] == ref["photos"]
    tasks.publish(p, RUN, store)
    face = store.get(bucket, "out/" + moved.replace("/images/", "/faces/"))
    assert face == store.get(bucket, "out/train/faces/000002_male_White_51/normal.jpg")


class CountingGets:
    """An S3 client that counts photo downloads."""

    def __init__(self, client):
        self.client, self.photos = client, []

    def __getattr__(self, name):
        real = getattr(self.client, name)
        if name != "get_object":
            return real

        def counted(**kwargs):
            if "/images/" in kwargs["Key"]:
                self.photos.append(kwargs["Key"])
            return real(**kwargs)
        return counted


def _published(store, bucket, dest):
    """Faces and CSVs under dest, by key relative to it."""
    return {k[len(dest):]: store.get(bucket, k) for k in keys(store, bucket, dest) if "/_facecrop/" not in k}



def test_a_rerun_over_unchanged_photos_downloads_and_detects_nothing_and_publishes_the_same(store, bucket, s3):
    p = params(bucket)
    first = full_run(store, p, "first")
    before = _published(store, bucket, "out/")
    counting = CountingGets(s3.client())
    again = S3Store(counting, threads=8)
    assert tasks.plan(p, "second", again) == []  # no shard: nothing to detect
    tasks.publish(p, "second", again)
    second = tasks.record_metrics(p, "second", again)
    assert counting.photos == []
    assert _published(store, bucket, "out/") == before
    rows1, _ = manifest_of(store, bucket, "out/", "first")
    rows2, reused = manifest_of(store, bucket, "out/", "second")
    assert rows2 == rows1 and len(reused) == len(rows1) == 25
    for name, m in second["classes"].items():
        assert {**m, "reused": 0} == first["classes"][name] and m["reused"] == m["images"]


def test_changed_added_and_deleted_photos_are_exactly_what_a_rerun_recomputes(store, bucket, s3):
    client = s3.client()
    client.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in keys(store, bucket, "raw/")]})
    s3.upload(bucket, "raw/", samples.dataset(n_people=12, n_eval=12))
    p = params(bucket, photos_per_shard=40)
    full_run(store, p, "first")
    photos = [k for k in keys(store, bucket, "raw/") if "/images/" in k and "/._" not in k and "000012" not in k]
    replaced, deleted = photos[10:15], photos[20:21]  # 5 % and 1 % of 97
    for target, donor in zip(replaced, photos[30:35]):
        client.copy_object(Bucket=bucket, Key=target, CopySource=f"{bucket}/{donor}")
    client.delete_object(Bucket=bucket, Key=deleted[0])
    extra = dict(samples.dataset(n_people=14, n_eval=0, junk=False))
    added = [f"raw/{k}" for k in extra if "000014_" in k][:2]  # 2 %
    for key in added:
        client.put_object(Bucket=bucket, Key=key, Body=extra[key[len("raw/"):]])

    counting = CountingGets(s3.client())
    refs = tasks.plan(p, "second", S3Store(counting, threads=8))
    assert json.loads(store.get(bucket, "out/_facecrop/runs/second/plan.json"))["gone"] == 1
    for ref in refs:
        tasks.crop_shard(p, "second", ref, S3Store(counting, threads=8), workers=1)
    tasks.publish(p, "second", store)
    assert sorted(counting.photos) == sorted(replaced + added)
    _, reused = manifest_of(store, bucket, "out/", "second")
    assert len(reused) == 97 - 5 - 1

    full_run(store, params(bucket, photos_per_shard=40, dest_uri=f"s3://{bucket}/fresh"), "fresh")
    assert _published(store, bucket, "out/") == _published(store, bucket, "fresh/")  # the deleted photo's face is gone too
    assert manifest_of(store, bucket, "out/", "second")[0] == manifest_of(store, bucket, "fresh/", "fresh")[0]


def test_full_recrop_and_new_settings_ignore_the_index(store, bucket, s3):
    p = params(bucket)
    full_run(store, p, "first")
    assert sum(r["photos"] for r in tasks.plan({**p, "full_recrop": True}, "again", store)) == 25
    assert sum(r["photos"] for r in tasks.plan({**p, "margin_top": 50}, "again", store)) == 25
    assert tasks.plan(p, "again", store) == []


def test_a_face_overwritten_by_a_run_that_never_published_is_cropped_again(store, bucket, s3):
    p = params(bucket)
    full_run(store, p, "first")
    before = _published(store, bucket, "out/")
    other = {**p, "margin_top": 10}  # another run over the same dest crops, then fails before publishing
    for ref in tasks.plan(other, "failed", store):
        tasks.crop_shard(other, "failed", ref, store, workers=1)
    assert _published(store, bucket, "out/") != before
    detected = sum(r.status == "detected" for r in manifest.loads(store.get(bucket, "out/_facecrop/runs/first/manifest.csv").decode()))
    # Every face the other margin changed is cropped again; centre crops came out byte-identical (same ETag), so they stay.
    assert sum(r["photos"] for r in tasks.plan(p, "third", store)) == detected == 20
    full_run(store, p, "third")
    assert _published(store, bucket, "out/") == before


def test_faces_of_deleted_or_now_unreadable_photos_are_removed_even_on_a_full_recrop(store, bucket, s3):
    p = params(bucket)
    full_run(store, p, "first")
    client = s3.client()
    client.delete_object(Bucket=bucket, Key="raw/train/images/000001_male_White_47/mask2.jpg")
    client.put_object(Bucket=bucket, Key="raw/train/images/000002_male_White_51/mask3.jpg", Body=b"not a photo any more")
    full_run(store, {**p, "full_recrop": True}, "second")
    faces = {k for k in keys(store, bucket, "out/") if "/faces/" in k}
    assert "out/train/faces/000001_male_White_47/mask2.jpg" not in faces
    assert "out/train/faces/000002_male_White_51/mask3.jpg" not in faces
    assert len(faces) == 23 - 2
