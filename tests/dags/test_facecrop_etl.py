"""The DAG file as the scheduler sees it: parses, wires, retries, pools, params."""

import copy
import subprocess
import sys
from pathlib import Path

import pytest

from facecrop_ops.config.run import parse

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(REPO / "dags"), known_pools={"default_pool"})


@pytest.fixture(scope="module")
def dag(dagbag):
    return dagbag.dags["facecrop_etl"]


def test_the_dag_folder_imports_cleanly(dagbag):
    assert dagbag.import_errors == {}
    assert list(dagbag.dags) == ["facecrop_etl"]


def test_tasks_are_wired_in_pipeline_order(dag):
    order = {t.task_id: {d.task_id for d in t.downstream_list} for t in dag.tasks}
    assert order == {
        "plan": {"crop_shard", "watch_gpu_pool"},
        "watch_gpu_pool": set(),
        "crop_shard": {"publish_csvs", "review_gate"},
        "review_gate": {"publish_csvs"},
        "publish_csvs": {"record_metrics"},
        "record_metrics": {"check_miss_rates"},
        "check_miss_rates": set(),
    }


def test_every_task_retries_and_only_detection_uses_the_gpu_pool(dag):
    assert all(t.retries >= 2 for t in dag.tasks if t.task_id != "review_gate")
    assert dag.get_task("review_gate").retries == 0  # a person's answer is not asked again
    pools = {t.task_id: t.pool for t in dag.tasks}
    assert pools.pop("crop_shard") == "gpu"
    assert set(pools.values()) == {"default_pool"}


def test_manual_by_default_tags_and_docs(dag):
    assert dag.schedule is None
    assert {"facecrop", "etl"} <= set(dag.tags)
    assert all(f"**{t.task_id}**" in dag.doc_md and t.doc_md for t in dag.tasks)


def test_trigger_form_defaults_are_the_reference_settings(dag):
    defaults = {k: v for k, v in dag.params.dump().items() if v is not None}
    rp = parse({**defaults, "source_uri": "s3://bucket/data"})
    assert rp.settings.margins == (30, 30, 60, 30) and rp.settings.thresholds == (0.6, 0.7, 0.7)
    assert (rp.settings.output_width, rp.settings.output_height) == (210, 280)
    assert rp.dest == rp.source and rp.path_column == "path" and rp.aws_conn_id == "aws_default"
    assert rp.csv_uris == ()


def test_optional_fields_are_not_marked_required_in_the_form(dag):
    """The UI marks a typed field required unless its type allows null."""
    types = {k: dag.params.get_param(k).schema.get("type") for k in dag.params}
    optional = {k for k, t in types.items() if "null" in (t if isinstance(t, list) else [t])}
    assert optional == {"dest_uri", "csv_uris"}


def test_the_form_rejects_what_the_code_rejects(dag):
    from airflow.sdk.exceptions import ParamValidationError

    form = copy.deepcopy(dag.params)
    with pytest.raises(ParamValidationError, match="No value passed"):
        form.validate()  # source_uri is required
    form["source_uri"] = "s3://bucket/data"
    assert form.validate()["min_face_size"] == 20
    for key, bad in (("source_uri", "bucket/data"), ("min_face_size", 0), ("jpeg_quality", 101),
                     ("engine", "turbo"), ("thresholds", [0.6, 0.7]), ("miss_rate_limits", {"all": 2})):
        with pytest.raises(ParamValidationError, match=f"Invalid input for param {key}"):
            form[key] = bad


def test_a_watcher_reports_a_missing_gpu_pool_without_holding_a_worker(dag):
    # Airflow 3.3 neither flags a missing pool in the UI nor fails its tasks: they wait in
    # "scheduled" forever. The watcher pokes in reschedule mode beside the shards, fails a try
    # every 30 min of waiting, and keeps retrying until the run times out, so a pool created
    # late still lets the run succeed.
    watcher = dag.get_task("watch_gpu_pool")
    assert watcher.mode == "reschedule" and watcher.exponential_backoff
    assert watcher.pool == "default_pool"
    run_timeout = dag.dagrun_timeout.total_seconds()
    assert run_timeout == 24 * 3600
    assert watcher.retries * 1800 >= run_timeout and watcher.timeout > run_timeout


def test_parsing_imports_no_heavy_library():
    code = (
        "import sys; from airflow.dag_processing.dagbag import DagBag; "
        f"b = DagBag(dag_folder={str(REPO / 'dags')!r}); assert b.dags, b.import_errors; "
        "print(sorted(m for m in ('torch', 'cv2', 'facenet_pytorch', 'pandas', 'matplotlib', 'PIL') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_deployment_settings_route_detection_to_gpu_workers_and_pods(tmp_path):
    """FACECROP_GPU_QUEUE (Celery) and FACECROP_GPU_POD_TEMPLATE (Kubernetes) reach only the detect task."""
    import json
    import os

    code = (
        "import json; from airflow.dag_processing.dagbag import DagBag; "
        f"d = DagBag(dag_folder={str(REPO / 'dags')!r}).dags['facecrop_etl']; "
        "print(json.dumps({t.task_id: [t.queue, t.executor_config] for t in d.tasks}))"
    )
    env = {**os.environ, "FACECROP_GPU_QUEUE": "gpu", "FACECROP_GPU_POD_TEMPLATE": "/pods/gpu.yaml"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    tasks = json.loads(out.stdout.strip().splitlines()[-1])
    assert tasks.pop("crop_shard") == ["gpu", {"pod_template_file": "/pods/gpu.yaml"}]
    assert {queue for queue, _ in tasks.values()} == {"default"}
    assert all(not config for _, config in tasks.values())


def test_alert_mails_are_wired_only_when_an_address_is_set(dag):
    """FACECROP_ALERT_EMAIL: every task mails when it fails, the pool watcher when it reports."""
    import json
    import os

    assert all(not t.on_failure_callback for t in dag.tasks)  # unset here
    code = (
        "import json; from airflow.dag_processing.dagbag import DagBag; "
        f"d = DagBag(dag_folder={str(REPO / 'dags')!r}).dags['facecrop_etl']; "
        "n = lambda cbs: [(type(c).__name__, c.to, c.smtp_conn_id, c.subject) for c in (cbs or [])]; "
        "print(json.dumps({t.task_id: [n(t.on_failure_callback), n(t.on_retry_callback)] for t in d.tasks}))"
    )
    env = {**os.environ, "FACECROP_ALERT_EMAIL": "a@example.com, b@example.com", "FACECROP_ALERT_SMTP_CONN_ID": "mail"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    tasks = json.loads(out.stdout.strip().splitlines()[-1])
    for task_id, (on_failure, on_retry) in tasks.items():
        assert [c[:3] for c in on_failure] == [["SmtpNotifier", ["a@example.com", "b@example.com"], "mail"]], task_id
        assert bool(on_retry) == (task_id == "watch_gpu_pool")
    assert "gpu pool" in tasks["watch_gpu_pool"][1][0][3]


def test_no_try_can_hang_forever(dag):
    """A hung S3 call or GPU must not hold the only gpu-pool slot: every try has a timeout."""
    limits = {t.task_id: t.execution_timeout.total_seconds() for t in dag.tasks}
    assert limits.pop("crop_shard") == 4 * 3600
    assert set(limits.values()) == {3600}


def test_the_form_offers_the_rescue_options_with_reference_defaults(dag):
    from airflow.sdk.exceptions import ParamValidationError

    form = copy.deepcopy(dag.params)
    form["source_uri"] = "s3://bucket/data"
    values = form.validate()
    assert (values["fallback"], values["fallback_size"], values["second_pass"]) == ("centre", "fixed", False)
    form["fallback"], form["second_pass"], form["second_pass_thresholds"] = "sibling", True, [0.3, 0.4, 0.5]
    rp = parse({**form.validate(), "source_uri": "s3://bucket/data"})
    assert rp.settings.uses_siblings and rp.settings.second_pass_thresholds == (0.3, 0.4, 0.5)
    for key, bad in (("fallback", "nearest"), ("fallback_size", "big"), ("second_pass_min_iou", 0)):
        with pytest.raises(ParamValidationError, match=f"Invalid input for param {key}"):
            form[key] = bad


def test_a_cron_and_the_raw_datasets_asset_can_both_start_runs():
    import os

    code = (
        "from airflow.dag_processing.dagbag import DagBag; "
        f"d = DagBag(dag_folder={str(REPO / 'dags')!r}).dags['facecrop_etl']; "
        "print(type(d.timetable).__name__, d.params['source_uri'], repr(d.timetable.asset_condition))"
    )
    for schedule, expected in (("0 3 * * *", "AssetOrTimeSchedule"), ("", "AssetTriggeredTimetable")):
        env = {**os.environ, "FACECROP_SOURCE_ASSET": "s3://raw/masks/", "FACECROP_SCHEDULE": schedule}
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
        # The asset's URI is normalised; an s3:// asset is also the runs' default source_uri.
        kind, source, condition = out.stdout.strip().splitlines()[-1].split(" ", 2)
        assert (kind, source) == (expected, "s3://raw/masks/") and "uri='s3://raw/masks'" in condition
    env = {**os.environ, "FACECROP_SCHEDULE": "@daily"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert "set FACECROP_SOURCE_URI to the dataset they crop" in out.stdout + out.stderr
