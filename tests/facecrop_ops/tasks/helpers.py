"""Helpers of the task-body tests: params of a sample run, listing keys, a run end to end."""

from datetime import datetime

from facecrop_ops import tasks
from facecrop_ops.dataset import manifest
from facecrop_ops.dataset.locations import S3Location
from facecrop_ops.dataset.run_folder import folder_name

RUN = "manual__2026-11-28T10:00:00+00:00"
RUN_DIR = f"out/_facecrop/runs/{folder_name(RUN)}/"


def params(bucket, **extra):
    return {"source_uri": f"s3://{bucket}/raw", "dest_uri": f"s3://{bucket}/out", "photos_per_shard": 10, **extra}


def keys(store, bucket, prefix=""):
    return sorted(store.list(S3Location(bucket, prefix)))


class Untouchable:
    def __getattr__(self, name):
        raise AssertionError(f"S3 was used ({name}) although the params were bad")


def finish_run(store, bucket, run_id, **extra):
    p = params(bucket, **extra)
    for ref in tasks.plan(p, run_id, store):
        tasks.crop_shard(p, run_id, ref, store, workers=1)
    tasks.publish(p, run_id, store)
    return tasks.record_metrics(p, run_id, store, run_after=datetime.fromisoformat(run_id.split("__")[1]))


def full_run(store, p, run_id):
    for ref in tasks.plan(p, run_id, store):
        tasks.crop_shard(p, run_id, ref, store, workers=1)
    tasks.publish(p, run_id, store)
    return tasks.record_metrics(p, run_id, store)


def manifest_of(store, bucket, dest, run_id):
    rows = manifest.loads(store.get(bucket, f"{dest}_facecrop/runs/{folder_name(run_id)}/manifest.csv").decode())
    return [(r.source, r.status, r.crop, r.error, r.etag) for r in rows], [r for r in rows if r.reused]
