"""The bodies of the DAG's tasks, one module per task, as plain functions of (params, run id,
S3 store): the DAG file only wires them, so each step runs and is tested without a scheduler.

    plan       plan:            params checked, the dataset listed, CSVs checked, shards written
    crop       crop_shard:      one shard pulled, cropped, uploaded; its manifest last (the done mark)
    gate       needs_review:    what the review gate asks a person, if anything
    publish    publish:         the manifest, the CSVs pointed at the faces, stale faces removed, the index
    report     record_metrics:  metrics.json, history.csv, report.html, gauges; check_miss_rates
    pool       gpu_pool_started: whether a shard got a slot of the gpu pool
    context    what every body starts from: params parsed, the run's folder, RunError, fail_fast

Everything a run writes besides faces and published CSVs goes under `<dest>/_facecrop/`
(named in `dataset.run_folder`, read and written through `run_store`). Errors a retry cannot
fix (bad params, no photos, a missing CSV or bucket, access denied) raise ParamsError,
RunError or StorageError; anything else (S3 throttling, timeouts, a killed worker) propagates
so the task fails and Airflow retries it.
"""

from facecrop_ops.config.run import ParamsError
from facecrop_ops.s3io import StorageError
from facecrop_ops.tasks.context import RunError, fail_fast, open_store
from facecrop_ops.tasks.crop import crop_shard
from facecrop_ops.tasks.gate import needs_review
from facecrop_ops.tasks.plan import plan
from facecrop_ops.tasks.pool import gpu_pool_started
from facecrop_ops.tasks.publish import publish
from facecrop_ops.tasks.report import check_miss_rates, record_metrics

__all__ = ["ParamsError", "RunError", "StorageError", "check_miss_rates", "crop_shard", "fail_fast", "gpu_pool_started",
           "needs_review", "open_store", "plan", "publish", "record_metrics"]
