"""
### facecrop_etl

Crops every portrait of a dataset in S3 to its face (MTCNN, padded crop, fallback centre
crop, resize to 210 x 280) for training a mask / gender / age classifier.

1. **plan**: check params, list `<source>/<split>/images/`, check the CSVs, pack person
   folders into shards.
2. **crop_shard** (mapped, pool `gpu`): pull a shard's photos, detect and crop (GPU when
   the worker has one), upload the faces to `<dest>/<split>/faces/`. Beside it,
   **watch_gpu_pool** fails a try, naming the fix, while no shard gets a `gpu` pool slot;
   it succeeds once one has started.
3. **review_gate**: with the `review_gate` param on and a class over its
   `miss_rate_limits`, the run waits for a person (Browse > Required Actions, linking the Face
   review page): Approve publishes, Reject ends the run failed with nothing published.
   **publish_csvs**: merge shard manifests; rewrite each CSV's path column to the faces
   and publish `<dest>/<name>_face.csv` (asset events carry per-class miss rates).
4. **record_metrics**: per-class images / detected / fallback / errors / miss rate to
   `metrics.json`, `<dest>/_facecrop/history.csv` (every run), the review page `report.html`,
   the task log and Airflow metrics (`facecrop.miss_rate.<class>`).
5. **check_miss_rates**: fail the run when a class is over its `miss_rate_limits`, naming the
   classes, their rates and the review page (unless a person approved it at the review gate).

Reports: `<dest>/_facecrop/runs/<run_id>/` (plan, manifest, rejects, metrics, report.html).
All logic lives in `plugins/facecrop_ops`; this file only wires it.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import AssetAlias, dag, task

from facecrop_ops.config import deployment, form
from facecrop_ops.config.names import DAG_ID
from facecrop_ops.operators import ReviewGate
from facecrop_ops.reporting import alerts

FACE_CSVS = AssetAlias("facecrop_face_csvs")


@dag(
    dag_id=DAG_ID,
    schedule=deployment.schedule(),
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    dagrun_timeout=timedelta(seconds=deployment.RUN_TIMEOUT_SECONDS),
    params=form.build(),
    tags=["facecrop", "etl", "computer-vision", "s3"],
    doc_md=__doc__,
    default_args={
        "owner": "facecrop",
        "retries": deployment.RETRIES,
        "retry_delay": timedelta(seconds=deployment.RETRY_DELAY_SECONDS),
        "execution_timeout": timedelta(seconds=deployment.TASK_TIMEOUT_SECONDS),
        "on_failure_callback": alerts.notifiers("failed"),  # mail when FACECROP_ALERT_EMAIL is set
    },
)
def facecrop_etl():
    @task
    def plan(params=None, run_id=None) -> list[dict]:
        """Validate params and list the dataset; fail here, before any data moves."""
        from facecrop_ops import tasks

        with tasks.fail_fast():
            return tasks.plan(params, run_id, tasks.open_store(params))

    # Mapped tasks lose their docstring in the UI, hence doc_md.
    @task(**deployment.gpu_task_kwargs(), map_index_template="{{ shard_label }}",
          execution_timeout=timedelta(seconds=deployment.SHARD_TIMEOUT_SECONDS),
          doc_md="Pull one shard's photos, detect/crop/resize them (GPU when the worker has one), upload the faces.")
    def crop_shard(shard: dict, params=None, run_id=None) -> dict:
        from airflow.sdk import get_current_context

        from facecrop_ops import tasks

        get_current_context()["shard_label"] = f"shard {shard['shard']} ({shard['photos']} photos)"
        with tasks.fail_fast():
            return tasks.crop_shard(params, run_id, shard, tasks.open_store(params), workers=deployment.CPU_WORKERS)

    # Reschedule mode holds no worker slot between pokes; backoff keeps pokes few (5 s, 10 s, ...
    # up to 5 min). Each try fails after POOL_WAIT_SECONDS more of waiting, which is how the UI
    # shows the problem; the next try succeeds as soon as a shard has started.
    @task.sensor(mode="reschedule", poke_interval=5, exponential_backoff=True, max_wait=timedelta(minutes=5),
                 timeout=deployment.RUN_TIMEOUT_SECONDS + deployment.POOL_WAIT_SECONDS,
                 retries=deployment.pool_watch_retries(), retry_delay=timedelta(seconds=5),
                 on_retry_callback=alerts.notifiers("reports shards waiting for the gpu pool"))
    def watch_gpu_pool(shards: list[dict], dag=None, run_id=None, ti=None) -> bool:
        """Report shards left waiting for the gpu pool (e.g. it is missing), naming the fix."""
        from airflow.sdk import get_current_context, timezone

        from facecrop_ops import tasks

        if not shards:
            return True  # nothing to detect: every photo was reused
        first_poke = ti.get_first_reschedule_date(get_current_context())
        waited = 0.0 if first_poke is None else (timezone.utcnow() - first_poke).total_seconds()
        attempt = ti.try_number - (ti.max_tries - ti.task.retries)  # 1, 2... since the run was (re)started
        states = ti.get_task_states(dag_id=dag.dag_id, task_ids=["crop_shard"], run_ids=[run_id])
        return tasks.gpu_pool_started(states, waited, attempt * deployment.POOL_WAIT_SECONDS, deployment.GPU_POOL)

    # Asks a person only with review_gate on and a class over its limit; none_failed: also when
    # no shard ran (every photo reused from the last run).
    review_gate = ReviewGate(
        task_id="review_gate",
        subject="facecrop: miss rates over the limits in {{ run_id }}: publish the CSVs?",
        response_timeout=timedelta(seconds=deployment.RUN_TIMEOUT_SECONDS),  # a person may take until the run's end
        retries=0,  # a person's answer is not retried
        trigger_rule="none_failed",
        doc_md="With review_gate on and a class over miss_rate_limits, waits for a person: Approve publishes, Reject fails the run.",
    )

    # none_failed: also when no shard ran (every photo reused from the last run).
    @task(outlets=[FACE_CSVS], trigger_rule="none_failed")
    def publish_csvs(shards: list[dict], params=None, run_id=None, outlet_events=None) -> dict:
        """Rewrite the CSVs to the faces and publish them as assets with per-class miss rates."""
        from airflow.sdk import Asset

        from facecrop_ops import tasks

        with tasks.fail_fast():
            result = tasks.publish(params, run_id, tasks.open_store(params))
        for csv in result["csvs"]:
            outlet_events[FACE_CSVS].add(
                Asset(csv["uri"]),
                extra={"rows": csv["rows"], "rejected": csv["rejected"], "miss_rate": result["miss_rate"],
                       "reports": result["reports"], "report": result["report"]},
            )
        return result

    @task
    def record_metrics(published: dict, params=None, run_id=None, dag_run=None) -> dict:
        """Per-class detection-miss metrics to metrics.json, history.csv, the review page, the log and Airflow metrics."""
        from facecrop_ops import tasks

        with tasks.fail_fast():
            return tasks.record_metrics(params, run_id, tasks.open_store(params), run_after=dag_run.run_after,
                                      logical_date=dag_run.logical_date)

    @task
    def check_miss_rates(doc: dict, params=None) -> None:
        """Fail the run when a class misses more faces than its limit."""
        from airflow.sdk.exceptions import AirflowFailException

        from facecrop_ops import tasks

        alert = tasks.check_miss_rates(doc, params.get("miss_rate_limits") or {})
        if alert and not params.get("review_gate"):  # with the gate, a person has approved them already
            raise AirflowFailException(alert)

    shards = plan()
    watch_gpu_pool(shards)
    cropped = crop_shard.expand(shard=shards)
    published = publish_csvs(cropped)
    cropped >> review_gate >> published
    check_miss_rates(record_metrics(published))


facecrop_etl()
