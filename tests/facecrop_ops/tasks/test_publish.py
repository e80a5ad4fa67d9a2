"""The `publish_csvs` task: CSVs, the manifest and the index, and what it refuses."""

import json
from datetime import datetime, timezone

import pytest

from facecrop_dev import samples
from facecrop_ops import tasks
from facecrop_ops.config.crop import Settings
from facecrop_ops.dataset import manifest
from tests.facecrop_ops.tasks.helpers import RUN, RUN_DIR, full_run, manifest_of, params


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


def test_publishing_a_run_planned_before_the_destination_moved_on_is_refused(store, bucket):
    p = params(bucket)
    full_run(store, p, "first")
    tasks.plan(p, "older", store)  # planned against "first"...
    full_run(store, p, "newer")  # ...then another run published
    with pytest.raises(tasks.RunError, match="moved on to run newer after this run was planned.*Clear the whole run"):
        tasks.publish(p, "older", store)


def test_a_destination_last_written_from_another_source_is_published_to(store, bucket, s3):
    """Its index serves nothing (other photos), yet it is the index this run planned against."""
    p = params(bucket)
    full_run(store, p, "first")
    s3.upload(bucket, "raw2/", samples.dataset(n_people=2, n_eval=1, junk=False))
    second = {**p, "source_uri": f"s3://{bucket}/raw2"}
    full_run(store, second, "second")
    rows, reused = manifest_of(store, bucket, "out/", "second")
    assert reused == [] and len(rows) == 2 * 7 + 1
    assert json.loads(store.get(bucket, "out/_facecrop/index.json"))["run_id"] == "second"
