"""The DAG where users run it: a scheduler, the REST API, Celery workers on their queues,
PostgreSQL, and a `gpu` pool that may be missing."""

import os
import re
import signal
import time
from contextlib import contextmanager

import pytest

from facecrop_dev import samples
from facecrop_dev.local_deploy import DAG_ID
from facecrop_ops.dataset import manifest
from facecrop_ops.dataset.run_folder import folder_name
from facecrop_ops.reporting import metrics

from .conftest import POOL_WAIT_SECONDS, RUN_TIMEOUT_SECONDS, SOURCE, assert_cropped, task_states, wait_for


def test_the_scheduler_starts_a_scheduled_run_by_itself(stack):
    api = stack.api()
    api.set_paused(DAG_ID, False)  # as a user does once; the @daily schedule then runs the latest day
    scheduled = wait_for(lambda: [r for r in api.dag_runs(DAG_ID) if r["run_type"] == "scheduled"], "a scheduled run", 60)
    run = api.wait_for_run(DAG_ID, scheduled[0]["dag_run_id"], 240, alive=stack.check_alive)
    assert run["state"] == "success"
    assert run["conf"] in ({}, None)  # its params are the defaults: FACECROP_SOURCE_URI, dest = source
    assert_cropped(stack, SOURCE, run["dag_run_id"])


def test_an_update_of_the_raw_datasets_asset_starts_a_run_that_reuses_every_unchanged_face(stack):
    """What an upstream DAG does when it lands photos: an asset event. Nothing changed since the
    scheduled run, so this run downloads and detects nothing and publishes the same."""
    api = stack.api()
    api.set_paused(DAG_ID, False)
    wait_for(lambda: [r for r in api.dag_runs(DAG_ID) if r["run_type"] == "scheduled" and r["state"] == "success"],
             "the scheduled run", 240)
    (asset,) = [a for a in api.get("/assets")["assets"] if a["name"] == SOURCE]  # its uri loses the trailing "/"
    api.post("/assets/events", {"asset_id": asset["id"], "extra": {"from": "an upstream DAG"}})
    triggered = wait_for(lambda: [r for r in api.dag_runs(DAG_ID) if r["run_type"] == "asset_triggered"], "an asset-triggered run", 120)
    run = api.wait_for_run(DAG_ID, triggered[0]["dag_run_id"], 240, alive=stack.check_alive)
    assert run["state"] == "success"
    states = task_states(api, run["dag_run_id"])
    assert states["crop_shard"] == ["skipped"] and states["publish_csvs"] == ["success"]  # nothing to detect
    doc = assert_cropped(stack, SOURCE, run["dag_run_id"])
    assert all(m["reused"] == m["images"] for m in doc["classes"].values())


def test_a_run_triggered_through_the_rest_api_detects_on_the_gpu_queue_in_worker_processes(stack):
    api = stack.api()
    api.set_paused(DAG_ID, False)
    dest = "s3://facecrop/rest-api/"
    run_id = api.trigger(DAG_ID, {"source_uri": SOURCE, "dest_uri": dest, "batch_size": 4})  # 4 chunks of 8 photos
    assert api.wait_for_run(DAG_ID, run_id, 240, alive=stack.check_alive)["state"] == "success"
    queues = {(ti["task_id"], ti["queue"]) for ti in api.task_instances(DAG_ID, run_id)}
    assert {t for t, q in queues if q == "gpu"} == {"crop_shard"}
    assert {t for t, q in queues if q == "default"} == {"plan", "watch_gpu_pool", "review_gate", "publish_csvs",
                                                        "record_metrics", "check_miss_rates"}
    # Each worker ran what its queue holds (their own logs say which task they executed).
    gpu_worker = stack.process("airflow-worker-gpu").log_tail(10**7)
    cpu_worker = stack.process("airflow-worker").log_tail(10**7)
    assert f"run_id={run_id}/task_id=crop_shard" in gpu_worker and f"run_id={run_id}/task_id=plan" not in gpu_worker
    assert f"run_id={run_id}/task_id=plan" in cpu_worker and f"run_id={run_id}/task_id=crop_shard" not in cpu_worker
    # Under Celery's daemonic prefork workers, detection still uses a process per core.
    log = api.task_log(DAG_ID, run_id, "crop_shard", map_index=0)
    cores = min(os.cpu_count() or 1, 4)
    assert re.search(rf"detection ran in {cores} worker process\(es\) \(pids \d+(, \d+){{{cores - 1}}}\)", log), log[-2000:]
    doc = assert_cropped(stack, dest, run_id)
    # The compose file's StatsD settings carry the run's gauges from the Celery worker.
    expected = {f"airflow.{name}": value for name, value in metrics.gauges(doc["classes"]).items()}
    assert len(expected) == 9 * len(metrics.FIELDS) and stack.statsd.gauges("airflow.facecrop.") == pytest.approx(expected, abs=1e-9)


@contextmanager
def gpu_pool_missing(api):
    """The `gpu` pool deleted, as a new deployment may have it, and put back afterwards."""
    api.delete("/pools/gpu")
    try:
        yield
    finally:
        api.set_pool("gpu", 1, "GPU workers")


def test_a_missing_pool_is_reported_with_the_fix_and_the_run_goes_on_once_it_exists(stack):
    api = stack.api()
    api.set_paused(DAG_ID, False)
    dest = "s3://facecrop/late-pool/"
    with gpu_pool_missing(api):
        started = time.monotonic()
        run_id = api.trigger(DAG_ID, {"source_uri": SOURCE, "dest_uri": dest})

        def reported():
            watcher = next(ti for ti in api.task_instances(DAG_ID, run_id) if ti["task_id"] == "watch_gpu_pool")
            return watcher["try_number"] >= 2 or watcher["state"] == "up_for_retry"

        wait_for(reported, "the pool watcher to report", POOL_WAIT_SECONDS + 120)
        reported_after = time.monotonic() - started
        assert set(task_states(api, run_id)["crop_shard"]) == {"scheduled"}
        message = api.task_log(DAG_ID, run_id, "watch_gpu_pool", try_number=1)
        assert "waiting in the Airflow pool 'gpu'" in message and 'airflow pools set gpu 1 "GPU workers"' in message
    # Documented: within FACECROP_POOL_WAIT_SECONDS plus the sensor's backoff (at most 5 min).
    assert reported_after < POOL_WAIT_SECONDS + 300
    run = api.wait_for_run(DAG_ID, run_id, 240, alive=stack.check_alive)
    assert run["state"] == "success", task_states(api, run_id)  # no clearing by hand
    assert task_states(api, run_id)["watch_gpu_pool"] == ["success"]
    assert_cropped(stack, dest, run_id)


def test_a_run_that_never_gets_a_pool_slot_ends_failed_at_the_run_timeout(stack):
    api = stack.api()
    api.set_paused(DAG_ID, False)
    dest = "s3://facecrop/no-pool/"
    with gpu_pool_missing(api):
        run_id = api.trigger(DAG_ID, {"source_uri": SOURCE, "dest_uri": dest})
        run = api.wait_for_run(DAG_ID, run_id, RUN_TIMEOUT_SECONDS + 120, alive=stack.check_alive)
    assert run["state"] == "failed"
    states = task_states(api, run_id)
    assert states["plan"] == ["success"] and set(states["crop_shard"]) == {"skipped"}
    assert states["publish_csvs"] == ["skipped"] and states["watch_gpu_pool"] == ["skipped"]
    client = stack.s3.client()
    assert not client.list_objects_v2(Bucket="facecrop", Prefix="no-pool/train_face.csv").get("KeyCount")


def _upload(stack, prefix: str, files) -> None:
    client = stack.s3.client()
    for key, data in files:
        client.put_object(Bucket="facecrop", Key=prefix + key, Body=data)


def _outputs(stack, prefix: str) -> dict[str, bytes]:
    """Everything a run publishes under a dest (faces, CSVs), by key relative to it."""
    client = stack.s3.client()
    keys = [o["Key"] for page in client.get_paginator("list_objects_v2").paginate(Bucket="facecrop", Prefix=prefix)
            for o in page.get("Contents", []) if "/_facecrop/" not in o["Key"]]
    return {k[len(prefix):]: client.get_object(Bucket="facecrop", Key=k)["Body"].read() for k in keys}


def _manifest_rows(stack, dest_prefix: str, run_id: str):
    key = f"{dest_prefix}_facecrop/runs/{folder_name(run_id)}/manifest.csv"
    body = stack.s3.client().get_object(Bucket="facecrop", Key=key)["Body"].read().decode()
    return [(r.source, r.status, r.crop, r.error) for r in manifest.loads(body)]


def test_a_detect_task_killed_midway_is_retried_and_leaves_exactly_a_clean_runs_objects(stack):
    api = stack.api()
    api.set_paused(DAG_ID, False)
    _upload(stack, "big/", samples.dataset(n_people=30, n_eval=12))  # 223 photos (2 unreadable), one shard
    conf = {"source_uri": "s3://facecrop/big/", "dest_uri": "s3://facecrop/killed/", "photos_per_shard": 1000}
    run_id = api.trigger(DAG_ID, conf)
    client = stack.s3.client()

    def running_with_faces_uploaded():
        ti = next((t for t in api.task_instances(DAG_ID, run_id) if t["task_id"] == "crop_shard"), None)
        if ti is None or ti["state"] != "running" or not ti["pid"]:
            return None
        faces = client.list_objects_v2(Bucket="facecrop", Prefix="killed/train/faces/").get("KeyCount", 0)
        return ti if faces >= 20 else None

    ti = wait_for(running_with_faces_uploaded, "crop_shard to upload its first faces", 180, every=0.2)
    os.kill(ti["pid"], signal.SIGKILL)
    run = api.wait_for_run(DAG_ID, run_id, 300, alive=stack.check_alive)
    assert run["state"] == "success"
    crop = next(t for t in api.task_instances(DAG_ID, run_id) if t["task_id"] == "crop_shard")
    assert crop["try_number"] == 2 and crop["state"] == "success"

    clean_id = api.trigger(DAG_ID, {**conf, "dest_uri": "s3://facecrop/killed-clean/"})
    assert api.wait_for_run(DAG_ID, clean_id, 300, alive=stack.check_alive)["state"] == "success"
    killed, clean = _outputs(stack, "killed/"), _outputs(stack, "killed-clean/")
    assert len([k for k in clean if "/faces/" in k]) == 221
    assert killed == clean  # no face missing, none extra, the same bytes and CSV rows
    assert _manifest_rows(stack, "killed/", run_id) == _manifest_rows(stack, "killed-clean/", clean_id)


def test_a_cleared_run_over_changed_photos_equals_a_fresh_run_over_them(stack):
    api = stack.api()
    api.set_paused(DAG_ID, False)
    files = dict(samples.dataset(n_people=4, n_eval=3))
    people = sorted({k.split("/")[2] for k in files if k.startswith("train/images/")})
    _upload(stack, "changing/", ((k, v) for k, v in files.items() if people[3] not in k))  # three people first
    conf = {"source_uri": "s3://facecrop/changing/", "dest_uri": "s3://facecrop/cleared/"}
    run_id = api.trigger(DAG_ID, conf)
    assert api.wait_for_run(DAG_ID, run_id, 240, alive=stack.check_alive)["state"] == "success"
    first = _outputs(stack, "cleared/")

    # Two photos replaced by other photos under the same keys, and a fourth person added.
    def photo(person: str, cls: str) -> str:
        return next(k for k in files if k.startswith(f"train/images/{person}/{cls}.") and files[k])

    swapped = [photo(people[0], "normal"), photo(people[1], "mask2")]
    _upload(stack, "changing/", [(swapped[0], files[photo(people[2], "normal")]), (swapped[1], files[photo(people[2], "mask1")])])
    _upload(stack, "changing/", ((k, v) for k, v in files.items() if people[3] in k))
    api.post(f"/dags/{DAG_ID}/dagRuns/{run_id}/clear", {"dry_run": False})
    wait_for(lambda: api.dag_run(DAG_ID, run_id)["state"] != "success", "the cleared run to start again", 60, every=0.5)
    assert api.wait_for_run(DAG_ID, run_id, 240, alive=stack.check_alive)["state"] == "success"

    fresh_id = api.trigger(DAG_ID, {**conf, "dest_uri": "s3://facecrop/fresh/"})
    assert api.wait_for_run(DAG_ID, fresh_id, 240, alive=stack.check_alive)["state"] == "success"
    cleared, fresh = _outputs(stack, "cleared/"), _outputs(stack, "fresh/")
    assert cleared == fresh
    added = [k for k, v in files.items() if people[3] in k and v]  # the new person's readable photos
    assert added and len([k for k in fresh if "/faces/" in k]) == len([k for k in first if "/faces/" in k]) + len(added)
    assert any(cleared[k.replace("/images/", "/faces/")] != first[k.replace("/images/", "/faces/")] for k in swapped)
    assert _manifest_rows(stack, "cleared/", run_id) == _manifest_rows(stack, "fresh/", fresh_id)
