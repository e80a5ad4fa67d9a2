"""A run through a faulty network: `airflow dags test` reaches moto's S3 server through a
proxy of the test's own that answers a share of requests with 500, 503 SlowDown, a dropped
connection or a slow answer, and keeps failing some photos past boto3's attempts. boto3's
retries, the shard's own later rounds and then Airflow's retry finish the run, and its faces,
CSVs and metrics are those of a clean run over the same photos."""

import json
import sqlite3
from dataclasses import replace

import pytest

from facecrop_dev import local_run, samples
from facecrop_dev.local_s3 import moto_server
from facecrop_ops.dataset import manifest

from ..faulty_s3 import Faults, faulty_proxy

BUCKET = "faults-data"
PERSON = "train/images/000001_male_White_47"
LATE = "train/images/000003_male_Asian_21/mask2.png"


def outputs(client, prefix):
    objects = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix):
        for o in page.get("Contents", []):
            if "/_facecrop/" not in o["Key"]:
                objects[o["Key"][len(prefix):]] = client.get_object(Bucket=BUCKET, Key=o["Key"])["Body"].read()
    return objects


def report(client, prefix, name):
    runs = client.list_objects_v2(Bucket=BUCKET, Prefix=f"{prefix}_facecrop/runs/")["Contents"]
    key = next(o["Key"] for o in runs if o["Key"].endswith("/" + name))
    return client.get_object(Bucket=BUCKET, Key=key)["Body"].read()


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    home = tmp_path_factory.mktemp("airflow")
    # Besides the random faults: three photos of one shard fail 8 times each (more than boto3's
    # 5 attempts: the shard tries them again after its other photos and gets them), and one of
    # another shard fails 20 times (past the shard's rounds too: its try fails keeping the rest,
    # and Airflow's retry fetches that photo alone).
    faults = Faults(fail_first={**{f"/raw/{PERSON}/{c}.jpg": 8 for c in ("mask1", "mask4", "normal")},
                                f"/raw/{LATE}": 20})
    with moto_server() as s3, faulty_proxy(s3.endpoint_url, faults) as proxy:
        s3.upload(BUCKET, "raw/", samples.dataset(n_people=3, n_eval=3))
        retries = {"FACECROP_RETRIES": "6", "FACECROP_RETRY_DELAY_SECONDS": "1", "FACECROP_S3_RETRY_DELAYS": "0.5,0.5"}
        clean = {**local_run.airflow_env(home, s3), **retries}
        faulty = {**local_run.airflow_env(home, replace(s3, endpoint_url=proxy)), **retries}
        local_run.prepare_airflow(clean)
        logs = {}
        for env, dest in ((clean, "clean"), (faulty, "faulty")):
            conf = {"source_uri": f"s3://{BUCKET}/raw/", "dest_uri": f"s3://{BUCKET}/{dest}/", "photos_per_shard": 8}
            done = local_run.airflow(env, "dags", "test", "facecrop_etl", "--conf", json.dumps(conf), quiet=True)
            logs[dest] = done.stdout + done.stderr
        client = s3.client()
        with sqlite3.connect(home / "airflow.db") as db:
            tries = db.execute("select r.run_id, max(t.try_number) from dag_run r join task_instance t using (dag_id, run_id) "
                               "where t.task_id = 'crop_shard' group by r.run_id order by r.id").fetchall()
        yield {"client": client, "faults": faults.seen, "tries": [n for _, n in tries], "log": logs["faulty"]}


def test_the_proxy_really_failed_requests_every_way(runs):
    assert all(runs["faults"][kind] > 0 for kind in ("500", "503", "drop", "slow", "forced 503")), runs["faults"]


def test_photos_failing_past_boto3s_attempts_cost_no_task_try_and_one_failing_longer_costs_one(runs):
    # Every shard of the clean run ran once; the faulty run's late photo cost its shard a try (a
    # random fault past boto3's attempts on an upload may cost another).
    assert runs["tries"][0] == 1 and runs["tries"][1] >= 2
    log = runs["log"]
    assert "could not be downloaded after every retry, e.g. s3://faults-data/raw/" + LATE in log
    assert "photos were finished by an earlier try; 1 left" in log  # the retry fetched the late photo alone
    assert "trying them again" in log and "retry, e.g. s3://faults-data/raw/" + PERSON not in log


def test_faces_and_csvs_equal_a_clean_runs(runs):
    clean, faulty = outputs(runs["client"], "clean/"), outputs(runs["client"], "faulty/")
    assert len([k for k in clean if "/faces/" in k]) == 23
    assert faulty == clean  # same keys under each dest, same bytes (CSV paths are relative)


def test_metrics_and_manifest_equal_a_clean_runs(runs):
    client = runs["client"]
    assert json.loads(report(client, "faulty/", "metrics.json"))["classes"] == json.loads(report(client, "clean/", "metrics.json"))["classes"]
    rows = lambda p: [(r.source, r.status, r.crop, r.error) for r in manifest.loads(report(client, p, "manifest.csv").decode())]  # noqa: E731
    assert rows("faulty/") == rows("clean/")
