"""The task bodies against a real S3 API (moto's server on 127.0.0.1), without a scheduler."""

import io
import json
import re
from datetime import datetime, timezone

import pytest

from facecrop_dev import samples
from facecrop_dev.local_s3 import moto_server
from facecrop_ops import tasks
from facecrop_ops.config.crop import Settings
from facecrop_ops.config.run import ParamsError
from facecrop_ops.dataset import manifest
from facecrop_ops.dataset.csv_rewrite import CsvError
from facecrop_ops.dataset.locations import S3Location
from facecrop_ops.s3io import S3Store, StorageError
from facecrop_ops.tasks.crop import GONE

RUN = "manual__2026-11-28T10:00:00+00:00"
RUN_DIR = "out/_facecrop/runs/manual__2026-11-28T10_00_00_00_00/"


@pytest.fixture(scope="module")
def s3():
    with moto_server() as server:
        yield server


@pytest.fixture()
def bucket(s3, request):
    name = "t-" + request.node.name.replace("_", "-")[:40].lower().strip("-")
    s3.upload(name, "raw/", samples.dataset(n_people=3, n_eval=3))
    return name


@pytest.fixture()
def store(s3):
    return S3Store(s3.client(), threads=8)


def params(bucket, **extra):
    return {"source_uri": f"s3://{bucket}/raw", "dest_uri": f"s3://{bucket}/out", "photos_per_shard": 10, **extra}


def keys(store, bucket, prefix=""):
    return sorted(store.list(S3Location(bucket, prefix)))


class Untouchable:
    def __getattr__(self, name):
        raise AssertionError(f"S3 was used ({name}) although the params were bad")


def test_bad_params_stop_the_run_before_any_s3_call():
    with pytest.raises(ParamsError, match="min_face_size=0"):
        tasks.plan({"source_uri": "s3://data/raw", "min_face_size": 0}, RUN, Untouchable())


def test_a_missing_bucket_is_named(store):
    with pytest.raises(StorageError, match="bucket 'no-such-bucket' does not exist: check source_uri"):
        tasks.plan({"source_uri": "s3://no-such-bucket/raw"}, RUN, store)


def test_a_csv_without_the_path_column_stops_the_plan_before_shards_are_written(store, bucket):
    with pytest.raises(CsvError, match="has no column 'file'"):
        tasks.plan(params(bucket, path_column="file"), RUN, store)
    assert keys(store, bucket, "out/") == []


def test_a_missing_csv_is_named(store, bucket):
    with pytest.raises(tasks.RunError, match=r"CSV s3://.*/nope.csv does not exist: fix csv_uris"):
        tasks.plan(params(bucket, csv_uris=[f"s3://{bucket}/raw/nope.csv"]), RUN, store)


def test_plan_writes_small_shard_refs_and_shard_key_lists(store, bucket):
    refs = tasks.plan(params(bucket), RUN, store)
    assert [r["shard"] for r in refs] == list(range(len(refs))) and 2 <= len(refs) <= 4
    assert {r["plan"] for r in refs} == {json.loads(store.get(bucket, RUN_DIR + "plan.json"))["plan_id"]}
    assert sum(r["photos"] for r in refs) == 3 * 7 + 4  # 3 eval photos + the non-image named .jpg
    plan_doc = json.loads(store.get(bucket, RUN_DIR + "plan.json"))
    assert plan_doc["skipped_hidden"] == ["train/images/000001_male_White_47/._mask1.jpg"]
    assert plan_doc["csv_uris"] == [f"s3://{bucket}/raw/test_data.csv", f"s3://{bucket}/raw/train_data.csv"]


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


def test_publish_and_metrics_agree_with_the_manifest(store, bucket):
    refs = tasks.plan(params(bucket), RUN, store)
    for ref in refs:
        tasks.crop_shard(params(bucket), RUN, ref, store, workers=1)
    result = tasks.publish(params(bucket), RUN, store)
    doc = tasks.record_metrics(params(bucket), RUN, store, run_after=datetime(2026, 11, 28, 10, tzinfo=timezone.utc))
    rows = manifest.loads(store.get(bucket, RUN_DIR + "manifest.csv").decode())
    classes = doc["classes"]
    assert len(rows) == result["photos"] == classes["all"]["images"] == 25
    assert classes["all"]["detected"] == sum(r.status == "detected" for r in rows)
    assert classes["all"]["errors"] == sum(r.status == "error" for r in rows) == 2
    assert json.loads(store.get(bucket, RUN_DIR + "metrics.json")) == doc
    assert doc["run"] == {
        "run_id": RUN, "run_after": "2026-11-28T10:00:00+00:00", "logical_date": None,
        "source_uri": f"s3://{bucket}/raw/", "dest_uri": f"s3://{bucket}/out/", "engine": "fast",
        "settings_fingerprint": Settings().fingerprint(), "report": f"s3://{bucket}/{RUN_DIR}report.html",
    }
    assert result["miss_rate"]["all"] == pytest.approx(classes["all"]["miss_rate"], abs=1e-6)
    assert result["report"] == doc["run"]["report"]
    train = store.get(bucket, "out/train_face.csv").decode().splitlines()
    assert len(train) == 1 + 21 - 1  # header, 21 photos, the zero-byte one rejected
    assert all(line.startswith("train/faces/") for line in train[1:])
    rejects = store.get(bucket, RUN_DIR + "rejects.csv").decode().splitlines()
    assert len(rejects) == 3 and "empty file (0 bytes)" in "".join(rejects)


def test_publish_refuses_to_run_with_a_shard_missing(store, bucket):
    tasks.plan(params(bucket), RUN, store)
    with pytest.raises(tasks.RunError, match="shard 0 has no manifest"):
        tasks.publish(params(bucket), RUN, store)


def test_miss_rate_limits_name_classes_rates_and_the_review_page():
    doc = {"run": {"run_id": RUN, "report": "s3://b/out/_facecrop/runs/r/report.html"},
           "classes": {"normal": {"miss_rate": 0.02}, "mask1": {"miss_rate": 0.5}, "all": {"miss_rate": 0.2}}}
    assert tasks.check_miss_rates(doc, {"all": 0.3, "normal": 0.05}) is None
    assert tasks.check_miss_rates(doc, {"mask1": 0.4, "masked": 0.1}) == (
        f"miss-rate limits exceeded in run {RUN}: mask1: miss rate 50.0% > limit 40.0%; "
        "masked: no such class in this run (classes: normal, mask1, all). "
        "Review page: s3://b/out/_facecrop/runs/r/report.html"
    )


def test_the_pool_watcher_is_satisfied_once_a_shard_leaves_scheduled():
    waiting = {RUN: {"crop_shard_0": "scheduled", "crop_shard_1": None}}
    assert tasks.gpu_pool_started(waiting, 10, 1800, "gpu") is False
    for state in ("queued", "running", "success", "failed", "up_for_retry"):
        assert tasks.gpu_pool_started({RUN: {"crop_shard_0": "scheduled", "crop_shard_1": state}}, 5000, 1800, "gpu")


def test_the_pool_watcher_names_the_fix_after_waiting_too_long():
    with pytest.raises(tasks.RunError) as err:
        tasks.gpu_pool_started({RUN: {"crop_shard_0": "scheduled"}}, 1800, 1800, "gpu")
    assert str(err.value) == (
        "no crop_shard task has started after 0:30:00 waiting in the Airflow pool 'gpu': the pool is missing or has "
        'no free slot. Create it with `airflow pools set gpu 1 "GPU workers"` (or in the UI: Admin > Pools), or set '
        "FACECROP_GPU_POOL to an existing pool. The run goes on by itself once a shard starts; this check retries until then"
    )


def _finish(store, bucket, run_id, **extra):
    p = params(bucket, **extra)
    for ref in tasks.plan(p, run_id, store):
        tasks.crop_shard(p, run_id, ref, store, workers=1)
    tasks.publish(p, run_id, store)
    return tasks.record_metrics(p, run_id, store, run_after=datetime.fromisoformat(run_id.split("__")[1]))


def _history(store, bucket):
    import pandas as pd

    return pd.read_csv(io.BytesIO(store.get(bucket, "out/_facecrop/history.csv")))


def test_history_holds_each_run_once_through_clears_and_runs_finishing_meanwhile(store, bucket):
    first = "manual__2026-11-01T00:00:00+00:00"
    _finish(store, bucket, first)
    _finish(store, bucket, first)  # the run cleared and run again: replaced, not doubled
    assert _history(store, bucket).groupby("run_id").size().to_dict() == {first: 9}  # 8 classes and all

    # Another run's metrics land while this run rebuilds the history (after its first listing).
    other = "manual__2026-11-03T00:00:00+00:00"
    other_doc = json.loads(store.get(bucket, f"out/_facecrop/runs/{first.replace(':', '_').replace('+', '_')}/metrics.json"))
    other_doc["run"]["run_id"], other_doc["run"]["run_after"] = other, "2026-11-03T00:00:00+00:00"
    listing, calls = store.list, []

    def list_then_other_finishes(*args, **kwargs):
        keys = listing(*args, **kwargs)
        if not calls:
            store.put_text(bucket, "out/_facecrop/runs/other/metrics.json", json.dumps(other_doc))
        calls.append(1)
        return keys

    store.list = list_then_other_finishes
    second = "manual__2026-11-02T00:00:00+00:00"
    doc = _finish(store, bucket, second, min_face_size=40)
    past = _history(store, bucket)
    assert list(dict.fromkeys(past["run_id"])) == [first, second, other]
    assert set(past[past["run_id"] == second]["settings_fingerprint"]) == {doc["run"]["settings_fingerprint"]}
    assert doc["run"]["settings_fingerprint"] != Settings().fingerprint()
    report = store.get(bucket, doc["run"]["report"].split(f"s3://{bucket}/")[1]).decode()
    assert f"this run and the previous one ({first})" in report and "Trend over the history" in report


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


class Flaky:
    """An S3 client whose `fail` operation answers 503 SlowDown (after boto3's retries gave up)."""

    def __init__(self, client, fail):
        self.client, self.fail = client, fail

    def __getattr__(self, name):
        from botocore.exceptions import ClientError

        if name == self.fail:
            def refuse(*args, **kwargs):
                raise ClientError({"Error": {"Code": "SlowDown", "Message": "Please reduce your request rate."}}, name)
            return refuse
        return getattr(self.client, name)


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


def test_a_throttled_listing_is_retried_but_a_refused_one_is_final(store, bucket, s3):
    from botocore.exceptions import ClientError

    class Paginator:
        def __init__(self, code):
            self.code = code

        def paginate(self, **kwargs):
            raise ClientError({"Error": {"Code": self.code, "Message": "no"}}, "ListObjectsV2")

    for code, raised in (("SlowDown", ClientError), ("InternalError", ClientError), ("AccessDenied", StorageError)):
        client = Flaky(s3.client(), None)
        client.get_paginator = lambda name, code=code: Paginator(code)
        with pytest.raises(raised) as err:
            tasks.plan(params(bucket), RUN, S3Store(client))
        assert type(err.value) is raised


def test_an_empty_csv_is_named(store, bucket, s3):
    s3.client().put_object(Bucket=bucket, Key="raw/train_data.csv", Body=b"")
    with pytest.raises(tasks.RunError, match=re.escape(f"CSV s3://{bucket}/raw/train_data.csv is empty (0 bytes)")):
        tasks.plan(params(bucket), RUN, store)


def test_csvs_given_by_name_and_clashing_published_names(store, bucket, s3):
    refs = tasks.plan(params(bucket, csv_uris=["train_data.csv"]), RUN, store)
    assert json.loads(store.get(bucket, RUN_DIR + "plan.json"))["csv_uris"] == ["train_data.csv"] and refs
    s3.client().copy_object(Bucket=bucket, Key="raw/old/train_data.csv", CopySource=f"{bucket}/raw/train_data.csv")
    with pytest.raises(tasks.RunError, match="would both be published as s3://.*/out/train_face.csv"):
        tasks.plan(params(bucket, csv_uris=["train_data.csv", "old/train_data.csv"]), RUN, store)


def test_fail_fast_ends_the_task_only_for_what_a_retry_cannot_fix():
    from airflow.sdk.exceptions import AirflowFailException
    from botocore.exceptions import ClientError

    for final in (StorageError("bucket 'x' does not exist"), tasks.RunError("no photos"), ParamsError("bad params"), CsvError("no column")):
        with pytest.raises(AirflowFailException, match=str(final)):
            with tasks.fail_fast():
                raise final
    throttled = ClientError({"Error": {"Code": "SlowDown", "Message": "slow down"}}, "GetObject")
    with pytest.raises(ClientError):
        with tasks.fail_fast():
            raise throttled


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


def _full_run(store, p, run_id):
    for ref in tasks.plan(p, run_id, store):
        tasks.crop_shard(p, run_id, ref, store, workers=1)
    tasks.publish(p, run_id, store)
    return tasks.record_metrics(p, run_id, store)


def _published(store, bucket, dest):
    """Faces and CSVs under dest, by key relative to it."""
    return {k[len(dest):]: store.get(bucket, k) for k in keys(store, bucket, dest) if "/_facecrop/" not in k}


def _manifest(store, bucket, dest, run_id):
    rows = manifest.loads(store.get(bucket, f"{dest}_facecrop/runs/{run_id}/manifest.csv").decode())
    return [(r.source, r.status, r.crop, r.error, r.etag) for r in rows], [r for r in rows if r.reused]


def test_a_rerun_over_unchanged_photos_downloads_and_detects_nothing_and_publishes_the_same(store, bucket, s3):
    p = params(bucket)
    first = _full_run(store, p, "first")
    before = _published(store, bucket, "out/")
    counting = CountingGets(s3.client())
    again = S3Store(counting, threads=8)
    assert tasks.plan(p, "second", again) == []  # no shard: nothing to detect
    tasks.publish(p, "second", again)
    second = tasks.record_metrics(p, "second", again)
    assert counting.photos == []
    assert _published(store, bucket, "out/") == before
    rows1, _ = _manifest(store, bucket, "out/", "first")
    rows2, reused = _manifest(store, bucket, "out/", "second")
    assert rows2 == rows1 and len(reused) == len(rows1) == 25
    for name, m in second["classes"].items():
        assert {**m, "reused": 0} == first["classes"][name] and m["reused"] == m["images"]


def test_changed_added_and_deleted_photos_are_exactly_what_a_rerun_recomputes(store, bucket, s3):
    client = s3.client()
    client.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in keys(store, bucket, "raw/")]})
    s3.upload(bucket, "raw/", samples.dataset(n_people=12, n_eval=12))
    p = params(bucket, photos_per_shard=40)
    _full_run(store, p, "first")
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
    _, reused = _manifest(store, bucket, "out/", "second")
    assert len(reused) == 97 - 5 - 1

    _full_run(store, params(bucket, photos_per_shard=40, dest_uri=f"s3://{bucket}/fresh"), "fresh")
    assert _published(store, bucket, "out/") == _published(store, bucket, "fresh/")  # the deleted photo's face is gone too
    assert _manifest(store, bucket, "out/", "second")[0] == _manifest(store, bucket, "fresh/", "fresh")[0]


def test_full_recrop_and_new_settings_ignore_the_index(store, bucket, s3):
    p = params(bucket)
    _full_run(store, p, "first")
    assert sum(r["photos"] for r in tasks.plan({**p, "full_recrop": True}, "again", store)) == 25
    assert sum(r["photos"] for r in tasks.plan({**p, "margin_top": 50}, "again", store)) == 25
    assert tasks.plan(p, "again", store) == []


def test_a_face_overwritten_by_a_run_that_never_published_is_cropped_again(store, bucket, s3):
    p = params(bucket)
    _full_run(store, p, "first")
    before = _published(store, bucket, "out/")
    other = {**p, "margin_top": 10}  # another run over the same dest crops, then fails before publishing
    for ref in tasks.plan(other, "failed", store):
        tasks.crop_shard(other, "failed", ref, store, workers=1)
    assert _published(store, bucket, "out/") != before
    detected = sum(r.status == "detected" for r in manifest.loads(store.get(bucket, "out/_facecrop/runs/first/manifest.csv").decode()))
    # Every face the other margin changed is cropped again; centre crops came out byte-identical (same ETag), so they stay.
    assert sum(r["photos"] for r in tasks.plan(p, "third", store)) == detected == 20
    _full_run(store, p, "third")
    assert _published(store, bucket, "out/") == before


def test_publishing_a_run_planned_before_the_destination_moved_on_is_refused(store, bucket):
    p = params(bucket)
    _full_run(store, p, "first")
    tasks.plan(p, "older", store)  # planned against "first"...
    _full_run(store, p, "newer")  # ...then another run published
    with pytest.raises(tasks.RunError, match="moved on to run newer after this run was planned.*Clear the whole run"):
        tasks.publish(p, "older", store)


def test_a_destination_last_written_from_another_source_is_published_to(store, bucket, s3):
    """Its index serves nothing (other photos), yet it is the index this run planned against."""
    p = params(bucket)
    _full_run(store, p, "first")
    s3.upload(bucket, "raw2/", samples.dataset(n_people=2, n_eval=1, junk=False))
    second = {**p, "source_uri": f"s3://{bucket}/raw2"}
    _full_run(store, second, "second")
    rows, reused = _manifest(store, bucket, "out/", "second")
    assert reused == [] and len(rows) == 2 * 7 + 1
    assert json.loads(store.get(bucket, "out/_facecrop/index.json"))["run_id"] == "second"


def test_faces_of_deleted_or_now_unreadable_photos_are_removed_even_on_a_full_recrop(store, bucket, s3):
    p = params(bucket)
    _full_run(store, p, "first")
    client = s3.client()
    client.delete_object(Bucket=bucket, Key="raw/train/images/000001_male_White_47/mask2.jpg")
    client.put_object(Bucket=bucket, Key="raw/train/images/000002_male_White_51/mask3.jpg", Body=b"not a photo any more")
    _full_run(store, {**p, "full_recrop": True}, "second")
    faces = {k for k in keys(store, bucket, "out/") if "/faces/" in k}
    assert "out/train/faces/000001_male_White_47/mask2.jpg" not in faces
    assert "out/train/faces/000002_male_White_51/mask3.jpg" not in faces
    assert len(faces) == 23 - 2
