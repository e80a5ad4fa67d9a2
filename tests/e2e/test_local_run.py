"""End to end: the real DAG via `airflow dags test`, SQLite Airflow, moto's S3 server on
127.0.0.1 reached through an Airflow connection, real MTCNN on real face photos."""

import csv
import io
import json
import sqlite3

import cv2
import numpy as np
import pytest

from facecrop_ops import local_run, manifest, metrics, samples
from facecrop_ops.local_s3 import moto_server

BUCKET, PREFIX = "e2e-data", "masks/"


def snapshot(client, prefix=PREFIX):
    objects = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix):
        for o in page.get("Contents", []):
            objects[o["Key"]] = o["ETag"]
    return objects


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two runs of the DAG over the same dataset; snapshots before and after each."""
    home = tmp_path_factory.mktemp("airflow")
    with moto_server() as s3:
        s3.upload(BUCKET, PREFIX, samples.dataset(n_people=3, n_eval=3))
        client = s3.client()
        raw = snapshot(client)
        env = local_run.airflow_env(home, s3)
        local_run.prepare_airflow(env)
        conf = json.dumps({"source_uri": f"s3://{BUCKET}/{PREFIX}", "photos_per_shard": 12})
        logs = local_run.airflow(env, "dags", "test", "facecrop_etl", "--conf", conf, quiet=True)
        first = snapshot(client)
        logs2 = local_run.airflow(env, "dags", "test", "facecrop_etl", "--conf", conf, quiet=True)
        second = snapshot(client)
        output = "".join(p.stdout + p.stderr for p in (logs, logs2))
        output += "".join(f.read_text(errors="replace") for f in home.rglob("*.log"))
        bodies = {k: client.get_object(Bucket=BUCKET, Key=k)["Body"].read() for k in second if "/images/" not in k}
        types = {k: client.head_object(Bucket=BUCKET, Key=k)["ContentType"] for k in second if "/faces/" in k}
        assets = json.loads(local_run.airflow(env, "assets", "list", "-o", "json", quiet=True).stdout)
        with sqlite3.connect(home / "airflow.db") as db:  # what the UI's asset page shows
            events = [(uri, json.loads(extra)) for uri, extra in db.execute(
                "select a.uri, e.extra from asset_event e join asset a on a.id = e.asset_id order by e.id")]
        yield {"raw": raw, "first": first, "second": second, "bodies": bodies, "types": types,
               "assets": assets, "events": events, "output": output, "secret": s3.secret_key}


def run_dirs(objects):
    return sorted({k.split("/_facecrop/runs/")[1].split("/")[0] for k in objects if "/_facecrop/runs/" in k})


def report(runs, name, run=0):
    rd = run_dirs(runs["second"])[run]
    return runs["bodies"][f"{PREFIX}_facecrop/runs/{rd}/{name}"]


def test_the_dag_ran_in_three_shards_twice(runs):
    assert len(run_dirs(runs["second"])) == 2
    plan = json.loads(report(runs, "plan.json"))
    assert plan["photos"] == 25 and plan["shards"] == 3


def test_one_210x280_face_per_good_photo(runs):
    rows = manifest.loads(report(runs, "manifest.csv").decode())
    good = [r for r in rows if r.status != "error"]
    faces = {k for k in runs["first"] if "/faces/" in k}
    assert len(rows) == 25 and len(good) == 23
    assert faces == {PREFIX + r.output for r in good}
    for key in faces:
        img = cv2.imdecode(np.frombuffer(runs["bodies"][key], np.uint8), cv2.IMREAD_COLOR)
        assert img.shape == (280, 210, 3), key
        assert runs["types"][key] == ("image/png" if key.endswith(".png") else "image/jpeg")


def test_published_csvs_point_at_faces_that_exist(runs):
    for name, expected_rows in (("train_face.csv", 20), ("test_face.csv", 3)):
        rows = list(csv.DictReader(io.StringIO(runs["bodies"][PREFIX + name].decode())))
        assert len(rows) == expected_rows
        for row in rows:
            assert "/faces/" in row["path"] and PREFIX + row["path"] in runs["second"]
    rejects = list(csv.DictReader(io.StringIO(report(runs, "rejects.csv").decode())))
    assert {r["reason"] for r in rejects} == {"photo unreadable: empty file (0 bytes)", "photo unreadable: not an image (unrecognised content)"}


def test_metrics_equal_the_manifest(runs):
    rows = manifest.loads(report(runs, "manifest.csv").decode())
    assert json.loads(report(runs, "metrics.json")) == metrics.as_json(metrics.per_class(rows))


def test_raw_objects_are_unchanged(runs):
    assert {k: v for k, v in runs["second"].items() if k in runs["raw"]} == runs["raw"]


def test_a_second_run_writes_identical_objects(runs):
    outputs = lambda snap: {k: v for k, v in snap.items() if k not in runs["raw"] and "/_facecrop/" not in k}  # noqa: E731
    assert outputs(runs["second"]) == outputs(runs["first"])
    assert report(runs, "manifest.csv", 0) == report(runs, "manifest.csv", 1)


def test_published_csvs_are_assets_whose_events_carry_miss_rates(runs):
    uris = {f"s3://{BUCKET}/{PREFIX}train_face.csv", f"s3://{BUCKET}/{PREFIX}test_face.csv"}
    assert {a["uri"] for a in runs["assets"]} == uris
    assert len(runs["events"]) == 4  # two CSVs, two runs
    doc = json.loads(report(runs, "metrics.json"))
    for uri, extra in runs["events"]:
        assert uri in uris
        assert extra["miss_rate"] == pytest.approx({k: v["miss_rate"] for k, v in doc.items()}, abs=1e-6)
        assert extra["rows"] == (20 if uri.endswith("train_face.csv") else 3) and extra["rejected"] == 1


def test_task_logs_show_progress_and_no_credentials(runs):
    out = runs["output"]
    assert "pull: " in out and "crop: " in out and "photos/s" in out and "detect on cpu" in out
    assert "miss rate" in out and "mask1" in out  # the per-class table
    assert runs["secret"] not in out
