"""One deployed Airflow for the deployment tests: PostgreSQL, Redis, moto's S3, and the
compose file's API server, scheduler, DAG processor and Celery workers (default and `gpu`
queues), all on 127.0.0.1 with docker-compose.yaml's settings (facecrop_dev.local_deploy)."""

from __future__ import annotations

import csv
import io
import json

import pytest

from facecrop_dev import samples
from facecrop_dev.local_deploy import DAG_ID, DATASET_BUCKET, DATASET_PREFIX, deployed_airflow
from facecrop_dev.local_services import CannotInstall, ensure_debian_packages, wait_until
from facecrop_ops.dataset import manifest
from facecrop_ops.dataset.run_folder import folder_name
from facecrop_ops.reporting import metrics

from ..needs import cannot_install

SOURCE = f"s3://{DATASET_BUCKET}/{DATASET_PREFIX}"
# Deployment settings of this stack, as a user would put them in .env: detection on the gpu
# queue, a daily schedule or an update of the raw dataset's asset, and short waits so the
# missing-pool cases finish in a test.
POOL_WAIT_SECONDS, RUN_TIMEOUT_SECONDS = 10, 90
SETTINGS = {
    "FACECROP_GPU_QUEUE": "gpu",
    "FACECROP_SCHEDULE": "@daily",
    "FACECROP_SOURCE_ASSET": "s3://facecrop/dataset/",
    "FACECROP_POOL_WAIT_SECONDS": str(POOL_WAIT_SECONDS),
    "FACECROP_RUN_TIMEOUT_SECONDS": str(RUN_TIMEOUT_SECONDS),
}
# samples.dataset(3, 3): 25 photos (2 unreadable), train_data.csv with 21 rows, test_data.csv with 3.
PHOTOS, GOOD_PHOTOS, CSV_ROWS = 25, 23, {"train_face.csv": 20, "test_face.csv": 3}


@pytest.fixture(scope="session")
def stack(tmp_path_factory):
    try:
        ensure_debian_packages({"/usr/lib/postgresql/*/bin/postgres": "postgresql", "redis-server": "redis-server"})
    except CannotInstall as exc:
        cannot_install("cannot start a deployment here", exc)
    workdir = tmp_path_factory.mktemp("deployment")
    # Not a compose setting: a killed task's retry starts after 5 s instead of 30 s.
    quick_retries = {"FACECROP_RETRY_DELAY_SECONDS": "5"}
    with deployed_airflow(workdir, settings=SETTINGS, extra_env=quick_retries, dataset=samples.dataset(3, 3)) as running:
        yield running
        processes = list(running.processes)
    assert not [p.name for p in processes if p.group_alive()], "a service outlived the deployment"


def wait_for(check, what: str, timeout: float, every: float = 1.0):
    """Poll `check` until it returns something true; an API error fails at once."""
    return wait_until(check, what, timeout, every=every, tolerate=())


def task_states(api, run_id: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for ti in api.task_instances(DAG_ID, run_id):
        out.setdefault(ti["task_id"], []).append(ti["state"])
    return out


def assert_cropped(stack, dest_uri: str, run_id: str) -> dict:
    """What a user checks after a run: a face per readable photo, CSVs pointing at faces
    that exist, metrics equal to the manifest. Returns the run's metrics."""
    bucket, prefix = dest_uri[len("s3://"):].split("/", 1)
    client = stack.s3.client()
    keys = {o["Key"] for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
            for o in page.get("Contents", [])}

    def body(key: str) -> bytes:
        return client.get_object(Bucket=bucket, Key=key)["Body"].read()

    reports = f"{prefix}_facecrop/runs/{folder_name(run_id)}/"
    rows = manifest.loads(body(reports + "manifest.csv").decode())
    good = [r for r in rows if r.status != "error"]
    assert len(rows) == PHOTOS and len(good) == GOOD_PHOTOS
    assert {k for k in keys if "/faces/" in k} == {prefix + r.output for r in good}
    for name, count in CSV_ROWS.items():
        published = list(csv.DictReader(io.StringIO(body(prefix + name).decode())))
        assert len(published) == count
        assert all(prefix + row["path"] in keys and "/faces/" in row["path"] for row in published)
    doc = json.loads(body(reports + "metrics.json"))
    assert doc["classes"] == metrics.as_json(metrics.per_class(rows)) and doc["run"]["run_id"] == run_id
    assert body(reports + "report.html").startswith(b"<!doctype html>")
    return doc
