"""The same deployment with LocalExecutor (no Celery workers): the scheduler runs the tasks."""

import os
import re

import pytest

from facecrop_dev import samples
from facecrop_dev.local_deploy import DAG_ID, deployed_airflow

from .conftest import SOURCE, assert_cropped


@pytest.fixture(scope="module")
def local_stack(stack, tmp_path_factory):
    """After the Celery stack is up (it installed what both need)."""
    executor = {"AIRFLOW__CORE__EXECUTOR": "LocalExecutor", "AIRFLOW__CORE__PARALLELISM": "4"}
    with deployed_airflow(tmp_path_factory.mktemp("local-executor"), extra_env=executor,
                          services=("airflow-apiserver", "airflow-scheduler", "airflow-dag-processor"),
                          dataset=samples.dataset(3, 3)) as running:
        yield running


def test_a_run_on_local_executor_detects_in_worker_processes(local_stack):
    api = local_stack.api()
    api.set_paused(DAG_ID, False)
    run_id = api.trigger(DAG_ID, {"source_uri": SOURCE, "dest_uri": "s3://facecrop/local-executor/", "batch_size": 4})
    assert api.wait_for_run(DAG_ID, run_id, 240, alive=local_stack.check_alive)["state"] == "success"
    log = api.task_log(DAG_ID, run_id, "crop_shard", map_index=0)
    cores = min(os.cpu_count() or 1, 4)
    assert re.search(rf"detection ran in {cores} worker process\(es\)", log), log[-2000:]
    assert_cropped(local_stack, "s3://facecrop/local-executor/", run_id)
