"""Deployment settings of the facecrop_etl DAG, read once from the environment at parse time.

These differ between installs, not between runs (per-run choices are DAG params). Set
them in the scheduler's and workers' environment, e.g. in docker-compose.yaml.
"""

from __future__ import annotations

import os
from typing import Any

# Cron expression or preset ("@daily") for scheduled runs; unset = manual runs only.
SCHEDULE: str | None = os.environ.get("FACECROP_SCHEDULE") or None

# An Airflow Asset (its URI, e.g. s3://bucket/masks/) that an upstream DAG updates when it
# lands new raw photos: each update starts a run (besides FACECROP_SCHEDULE, when both are set).
SOURCE_ASSET: str | None = os.environ.get("FACECROP_SOURCE_ASSET") or None

# Dataset a scheduled run crops (the trigger form's default source_uri): this, else the
# source asset when it is an s3:// URI; unset = the form asks for it.
SOURCE_URI: str | None = (os.environ.get("FACECROP_SOURCE_URI")
                          or (SOURCE_ASSET if SOURCE_ASSET and SOURCE_ASSET.startswith("s3://") else None))


# The Airflow pool that bounds how many shards detect at once (one slot per GPU, say).
# The demo and docker-compose create it; watch_gpu_pool reports it missing (below).
GPU_POOL: str = os.environ.get("FACECROP_GPU_POOL", "gpu")

# Celery queue served by GPU workers; unset = Airflow's default queue (one-machine installs).
GPU_QUEUE: str | None = os.environ.get("FACECROP_GPU_QUEUE") or None

# KubernetesExecutor: a pod template file (requesting the GPU) for the detect task's pods.
GPU_POD_TEMPLATE: str | None = os.environ.get("FACECROP_GPU_POD_TEMPLATE") or None

# Processes per detect task on a CPU worker; 0 = one per core. A GPU worker uses one.
CPU_WORKERS: int = int(os.environ.get("FACECROP_CPU_WORKERS", "0"))

# Concurrent S3 transfers per task.
TRANSFER_THREADS: int = int(os.environ.get("FACECROP_TRANSFER_THREADS", "16"))

# Seconds between the rounds in which a detect task tries again the photos S3 kept failing
# (after boto3's own 5 attempts): S3 throttles a busy prefix for seconds to minutes. What still
# fails then fails the try, and the task's retry fetches only those photos.
S3_RETRY_DELAYS: tuple[float, ...] = tuple(float(s) for s in os.environ.get("FACECROP_S3_RETRY_DELAYS", "2,10,30").split(",") if s.strip())

# Airflow 3.3 does not flag tasks whose pool is missing: they wait in "scheduled" forever.
# A watcher fails a try, naming the fix, each time no shard has started for this long more;
# it retries until a shard starts (then the run goes on by itself) or the run times out.
POOL_WAIT_SECONDS: int = max(1, int(os.environ.get("FACECROP_POOL_WAIT_SECONDS", "1800")))

# A run still going after this long is failed by the scheduler (its waiting tasks skipped):
# a run that cannot produce its data (a pool that never appears, a hung worker) ends.
RUN_TIMEOUT_SECONDS: int = int(os.environ.get("FACECROP_RUN_TIMEOUT_SECONDS", str(24 * 3600)))

# Failure alerts by mail, through Airflow's SMTP notifier and an `smtp` connection (host,
# port, login): comma-separated addresses; unset = no mail. The sender defaults to the
# connection's from_email.
ALERT_EMAILS: tuple[str, ...] = tuple(a.strip() for a in os.environ.get("FACECROP_ALERT_EMAIL", "").split(",") if a.strip())
ALERT_SMTP_CONN_ID: str = os.environ.get("FACECROP_ALERT_SMTP_CONN_ID", "smtp_default")
ALERT_FROM: str | None = os.environ.get("FACECROP_ALERT_FROM") or None

# Longest one try of a task may run before Airflow stops it (and retries): a hung S3 call or
# GPU must not hold the gpu pool's slot forever. Detect tasks get their own, longer limit.
SHARD_TIMEOUT_SECONDS: int = int(os.environ.get("FACECROP_SHARD_TIMEOUT_SECONDS", str(4 * 3600)))
TASK_TIMEOUT_SECONDS: int = int(os.environ.get("FACECROP_TASK_TIMEOUT_SECONDS", "3600"))

# Every task retries; a retried shard that finished is skipped, one that did not is redone
# whole and writes the same objects.
RETRIES: int = int(os.environ.get("FACECROP_RETRIES", "2"))
RETRY_DELAY_SECONDS: int = int(os.environ.get("FACECROP_RETRY_DELAY_SECONDS", "30"))


def schedule() -> Any:
    """Cron, the raw dataset's asset, either of both, or None (manual runs only)."""
    if (SCHEDULE or SOURCE_ASSET) and not SOURCE_URI:
        raise ValueError("FACECROP_SCHEDULE and FACECROP_SOURCE_ASSET start runs without a form: set FACECROP_SOURCE_URI "
                         "to the dataset they crop (an s3:// source asset serves as one)")
    if not SOURCE_ASSET:
        return SCHEDULE
    from airflow.sdk import Asset, AssetOrTimeSchedule, CronTriggerTimetable

    asset = Asset(SOURCE_ASSET)
    if not SCHEDULE:
        return [asset]
    return AssetOrTimeSchedule(timetable=CronTriggerTimetable(SCHEDULE, timezone="UTC"), assets=asset)


def pool_watch_retries() -> int:
    """Enough tries of POOL_WAIT_SECONDS each that the watcher outlasts the run."""
    return -(-RUN_TIMEOUT_SECONDS // POOL_WAIT_SECONDS) + 1


def gpu_task_kwargs() -> dict[str, Any]:
    """Pool always; queue and pod template only when configured, so a single-machine install
    needs nothing."""
    kwargs: dict[str, Any] = {"pool": GPU_POOL}
    if GPU_QUEUE:
        kwargs["queue"] = GPU_QUEUE
    if GPU_POD_TEMPLATE:
        kwargs["executor_config"] = {"pod_template_file": GPU_POD_TEMPLATE}
    return kwargs
