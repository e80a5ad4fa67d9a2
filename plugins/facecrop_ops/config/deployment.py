"""Deployment settings of the facecrop_etl DAG, read once from the environment at parse time.

These differ between installs, not between runs (per-run choices are DAG params). Set
them in the scheduler's and workers' environment, e.g. in docker-compose.yaml.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class EnvSetting:
    """One FACECROP_* variable: its default (None: unset) and what it does, for people (the
    configuration reference is generated from this table)."""

    name: str
    default: str | None
    help: str


TABLE: tuple[EnvSetting, ...] = (
    EnvSetting("FACECROP_SCHEDULE", None, "Cron expression or preset (`@daily`) for scheduled runs; unset: manual runs only."),
    EnvSetting("FACECROP_SOURCE_ASSET", None,
               "An Airflow Asset (its URI, e.g. `s3://bucket/masks/`) that an upstream DAG updates when it lands new raw "
               "photos: each update starts a run (besides FACECROP_SCHEDULE, when both are set)."),
    EnvSetting("FACECROP_SOURCE_URI", None,
               "The dataset scheduled runs crop (the trigger form's default source_uri); unset: the source asset when it "
               "is an s3:// URI, else the form asks for it."),
    EnvSetting("FACECROP_GPU_POOL", "gpu", "The Airflow pool that bounds how many shards detect at once (one slot per GPU)."),
    EnvSetting("FACECROP_GPU_QUEUE", None, "Celery queue served by GPU workers; unset: Airflow's default queue."),
    EnvSetting("FACECROP_GPU_POD_TEMPLATE", None,
               "KubernetesExecutor: a pod template file (requesting the GPU) for the detect task's pods."),
    EnvSetting("FACECROP_CPU_WORKERS", "0", "Detection processes per detect task on a CPU worker; 0: one per core. A GPU uses one."),
    EnvSetting("FACECROP_TRANSFER_THREADS", "16", "Concurrent S3 transfers per task."),
    EnvSetting("FACECROP_S3_RETRY_DELAYS", "2,10,30",
               "Seconds between the rounds in which a detect task tries again the photos S3 kept failing (after boto3's "
               "own 5 attempts): S3 throttles a busy prefix for seconds to minutes. What still fails then fails the try, "
               "and the task's retry fetches only those photos."),
    EnvSetting("FACECROP_POOL_WAIT_SECONDS", "1800",
               "Airflow 3.3 leaves tasks of a missing pool in `scheduled` forever: watch_gpu_pool fails a try, naming the "
               "fix, each time no shard has started for this long more, and retries until one does."),
    EnvSetting("FACECROP_RUN_TIMEOUT_SECONDS", str(24 * 3600),
               "The DAG's dagrun_timeout: a run still going then ends failed (a pool that never appears, a hung worker)."),
    EnvSetting("FACECROP_SHARD_TIMEOUT_SECONDS", str(4 * 3600), "execution_timeout of one try of a detect task."),
    EnvSetting("FACECROP_TASK_TIMEOUT_SECONDS", "3600", "execution_timeout of one try of every other task."),
    EnvSetting("FACECROP_RETRIES", "2",
               "Retries of every task: a retried shard that finished is skipped, one that did not is redone whole and "
               "writes the same objects."),
    EnvSetting("FACECROP_RETRY_DELAY_SECONDS", "30", "Pause before a task's retry."),
    EnvSetting("FACECROP_ALERT_EMAIL", None,
               "Comma-separated addresses mailed (Airflow's SMTP notifier) when a task fails for good; unset: no mail."),
    EnvSetting("FACECROP_ALERT_SMTP_CONN_ID", "smtp_default", "The Airflow `smtp` connection alerts are sent through."),
    EnvSetting("FACECROP_ALERT_FROM", None, "The alerts' sender; unset: the connection's from_email."),
)
_DEFAULTS = {setting.name: setting.default for setting in TABLE}


def _env(name: str) -> str | None:
    """The variable's value, else its table default; an empty value counts as unset."""
    return os.environ.get(name) or _DEFAULTS[name]


def _set(name: str) -> str:
    """A variable the table gives a default: always a value."""
    value = _env(name)
    assert value is not None, f"{name} has no default in the table"
    return value


SCHEDULE: str | None = _env("FACECROP_SCHEDULE")
SOURCE_ASSET: str | None = _env("FACECROP_SOURCE_ASSET")
SOURCE_URI: str | None = (_env("FACECROP_SOURCE_URI")
                          or (SOURCE_ASSET if SOURCE_ASSET and SOURCE_ASSET.startswith("s3://") else None))
GPU_POOL: str = _set("FACECROP_GPU_POOL")
GPU_QUEUE: str | None = _env("FACECROP_GPU_QUEUE")
GPU_POD_TEMPLATE: str | None = _env("FACECROP_GPU_POD_TEMPLATE")
CPU_WORKERS: int = int(_set("FACECROP_CPU_WORKERS"))
TRANSFER_THREADS: int = int(_set("FACECROP_TRANSFER_THREADS"))
S3_RETRY_DELAYS: tuple[float, ...] = tuple(float(s) for s in _set("FACECROP_S3_RETRY_DELAYS").split(",") if s.strip())
POOL_WAIT_SECONDS: int = max(1, int(_set("FACECROP_POOL_WAIT_SECONDS")))
RUN_TIMEOUT_SECONDS: int = int(_set("FACECROP_RUN_TIMEOUT_SECONDS"))
SHARD_TIMEOUT_SECONDS: int = int(_set("FACECROP_SHARD_TIMEOUT_SECONDS"))
TASK_TIMEOUT_SECONDS: int = int(_set("FACECROP_TASK_TIMEOUT_SECONDS"))
RETRIES: int = int(_set("FACECROP_RETRIES"))
RETRY_DELAY_SECONDS: int = int(_set("FACECROP_RETRY_DELAY_SECONDS"))
ALERT_EMAILS: tuple[str, ...] = tuple(a.strip() for a in (_env("FACECROP_ALERT_EMAIL") or "").split(",") if a.strip())
ALERT_SMTP_CONN_ID: str = _set("FACECROP_ALERT_SMTP_CONN_ID")
ALERT_FROM: str | None = _env("FACECROP_ALERT_FROM")


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
