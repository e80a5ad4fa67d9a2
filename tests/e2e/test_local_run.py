"""End to end: the real DAG via `airflow dags test`, SQLite Airflow, moto's S3 server on
127.0.0.1 reached through an Airflow connection, real MTCNN on real face photos, Airflow's
StatsD metrics received on a UDP port, alert mails on an SMTP server of the test's own."""

import csv
import io
import json
import sqlite3
import subprocess
import time
from dataclasses import replace

import cv2
import numpy as np
import pandas as pd
import pytest

from facecrop_dev import local_run, samples
from facecrop_dev.local_s3 import moto_server
from facecrop_dev.local_services import statsd_sink
from facecrop_ops.dataset import manifest
from facecrop_ops.reporting import metrics

from ..browser import artifact, chromium
from ..mail import smtp_server

BUCKET, PREFIX = "e2e-data", "masks/"


def snapshot(client, prefix=PREFIX):
    objects = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix):
        for o in page.get("Contents", []):
            objects[o["Key"]] = o["ETag"]
    return objects


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two runs of the DAG over the same dataset, snapshots before and after each; then a
    third whose miss-rate limits fail it. StatsD and failure mails are on for all three."""
    home = tmp_path_factory.mktemp("airflow")
    with moto_server() as s3, statsd_sink() as statsd, smtp_server() as mailbox:
        s3.upload(BUCKET, PREFIX, samples.dataset(n_people=3, n_eval=3))
        client = s3.client()
        raw = snapshot(client)
        env = local_run.airflow_env(home, s3)
        env.update(
            AIRFLOW__METRICS__STATSD_ON="True", AIRFLOW__METRICS__STATSD_HOST="127.0.0.1",
            AIRFLOW__METRICS__STATSD_PORT=str(statsd.port),
            FACECROP_ALERT_EMAIL="ml-team@example.com", FACECROP_ALERT_FROM="facecrop@example.com",
            **mailbox.airflow_connection_env(),
        )
        local_run.prepare_airflow(env)
        conf = {"source_uri": f"s3://{BUCKET}/{PREFIX}", "photos_per_shard": 12}
        logs = local_run.airflow(env, "dags", "test", "facecrop_etl", "--conf", json.dumps(conf), quiet=True)
        first = snapshot(client)
        logs2 = local_run.airflow(env, "dags", "test", "facecrop_etl", "--conf", json.dumps(conf), quiet=True)
        second = snapshot(client)
        over = subprocess.run([str(local_run.airflow_bin()), "dags", "test", "facecrop_etl", "--conf",
                               json.dumps({**conf, "miss_rate_limits": {"mask1": 0.01, "normal": 0.5}})],
                              env=env, capture_output=True, text=True)
        deadline = time.monotonic() + 10
        while not mailbox.messages and time.monotonic() < deadline:
            time.sleep(0.2)
        output = "".join(p.stdout + p.stderr for p in (logs, logs2, over))
        output += "".join(f.read_text(errors="replace") for f in home.rglob("*.log"))
        everything = snapshot(client)
        bodies = {k: client.get_object(Bucket=BUCKET, Key=k)["Body"].read() for k in everything if "/images/" not in k}
        types = {k: client.head_object(Bucket=BUCKET, Key=k)["ContentType"] for k in everything if "/faces/" in k or k.endswith(".html")}
        assets = json.loads(local_run.airflow(env, "assets", "list", "-o", "json", quiet=True).stdout)
        with sqlite3.connect(home / "airflow.db") as db:  # what the UI's asset page shows
            events = [(uri, json.loads(extra)) for uri, extra in db.execute(
                "select a.uri, e.extra from asset_event e join asset a on a.id = e.asset_id order by e.id")]
        yield {"raw": raw, "first": first, "second": second, "bodies": bodies, "types": types,
               "assets": assets, "events": events, "output": output, "secret": s3.secret_key,
               "over_limits": over, "mails": list(mailbox.messages), "statsd": statsd.gauges("airflow.facecrop.")}


def run_dirs(objects):
    return sorted({k.split("/_facecrop/runs/")[1].split("/")[0] for k in objects if "/_facecrop/runs/" in k})


def report(runs, name, run=0):
    rd = run_dirs(runs["bodies"])[run]
    return runs["bodies"][f"{PREFIX}_facecrop/runs/{rd}/{name}"]


def test_the_dag_ran_in_three_shards_then_reused_them(runs):
    assert len(run_dirs(runs["second"])) == 2 and len(run_dirs(runs["bodies"])) == 3
    plan = json.loads(report(runs, "plan.json"))
    assert plan["photos"] == 25 and plan["shards"] == 3
    again = json.loads(report(runs, "plan.json", 1))
    assert again["photos"] == again["reused"] == 25 and again["shards"] == 0


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
    doc = json.loads(report(runs, "metrics.json"))
    assert doc["classes"] == metrics.as_json(metrics.per_class(rows))
    assert doc["run"]["run_id"].startswith("manual__") and doc["run"]["engine"] == "fast"


def test_metrics_reach_statsd_equal_to_metrics_json(runs):
    """With [metrics] statsd_on, every class's miss rate and counts arrive as gauges."""
    classes = json.loads(report(runs, "metrics.json", run=2))["classes"]
    assert set(classes) == {"mask1", "mask2", "mask3", "mask4", "mask5", "incorrect_mask", "normal", "unlabeled", "all"}
    expected = {}
    for name, m in classes.items():
        expected.update({f"airflow.facecrop.{field}.{name}": m[field] for field in metrics.FIELDS})
    assert runs["statsd"] == pytest.approx(expected, abs=1e-9)


def test_the_history_holds_one_row_per_run_and_class(runs):
    past = pd.read_csv(io.BytesIO(runs["bodies"][f"{PREFIX}_facecrop/history.csv"]))
    assert past.groupby("run_id").size().tolist() == [9, 9, 9]
    last = past[past["run_id"] == past["run_id"].iloc[-1]].set_index("class")
    classes = json.loads(report(runs, "metrics.json", run=2))["classes"]
    assert last["miss_rate"].round(6).to_dict() == {k: v["miss_rate"] for k, v in classes.items()}
    assert past["settings_fingerprint"].nunique() == 1 and past["source_uri"].unique().tolist() == [f"s3://{BUCKET}/{PREFIX}"]


def test_the_review_page_opens_in_a_browser_with_its_table_and_every_image(runs, tmp_path):
    key = f"{PREFIX}_facecrop/runs/{run_dirs(runs['bodies'])[2]}/report.html"
    assert runs["types"][key] == "text/html" and len(runs["bodies"][key]) < 3_000_000
    page = tmp_path / "report.html"
    page.write_bytes(runs["bodies"][key])
    classes = json.loads(report(runs, "metrics.json", run=2))["classes"]
    with chromium() as browser:
        browser.get(page.as_uri())
        rows = browser.find_elements("css selector", "#per-class tbody tr")
        assert [r.find_element("css selector", "td").text for r in rows] == list(classes)
        sizes = browser.execute_script("return [...document.images].map(i => [i.alt, i.complete && i.naturalWidth])")
        assert len(sizes) >= 2 + classes["all"]["fallback"] and all(width for _, width in sizes), sizes
        assert "Trend over the history" in browser.page_source
        errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
        browser.set_window_size(1300, browser.execute_script("return document.body.scrollHeight") + 100)
        browser.save_screenshot(str(artifact("report.png")))
    assert errors == []


def test_a_run_over_its_miss_rate_limits_fails_and_mails_the_classes_rates_and_review_page(runs):
    assert runs["over_limits"].returncode != 0
    assert len(runs["mails"]) == 1
    mail = runs["mails"][0]
    body = mail.get_payload(0).get_payload(decode=True).decode() if mail.is_multipart() else mail.get_payload(decode=True).decode()
    assert mail["To"] == "ml-team@example.com" and "check_miss_rates" in mail["Subject"]
    doc = json.loads(report(runs, "metrics.json", run=2))
    assert f"mask1: miss rate {doc['classes']['mask1']['miss_rate']:.1%} &gt; limit 1.0%" in body
    assert doc["run"]["report"] in body and "normal" not in body.split("Review page")[0].split("exceeded")[1]


def test_raw_objects_are_unchanged(runs):
    assert {k: v for k, v in runs["second"].items() if k in runs["raw"]} == runs["raw"]


def test_a_second_run_reuses_every_face_and_writes_identical_objects(runs):
    outputs = lambda snap: {k: v for k, v in snap.items() if k not in runs["raw"] and "/_facecrop/" not in k}  # noqa: E731
    assert outputs(runs["second"]) == outputs(runs["first"])
    first, second = (manifest.loads(report(runs, "manifest.csv", i).decode()) for i in (0, 1))
    assert [replace(r, reused=False) for r in second] == first and not any(r.reused for r in first)
    assert all(r.reused for r in second)
    assert "25 reused from run manual__" in runs["output"] and "0 to crop in 0 shard(s)" in runs["output"]


def test_published_csvs_are_assets_whose_events_carry_miss_rates(runs):
    uris = {f"s3://{BUCKET}/{PREFIX}train_face.csv", f"s3://{BUCKET}/{PREFIX}test_face.csv"}
    assert {a["uri"] for a in runs["assets"]} == uris
    assert len(runs["events"]) == 6  # two CSVs, three runs
    doc = json.loads(report(runs, "metrics.json"))
    for uri, extra in runs["events"][:2]:
        assert uri in uris
        assert extra["miss_rate"] == pytest.approx({k: v["miss_rate"] for k, v in doc["classes"].items()}, abs=1e-6)
        assert extra["rows"] == (20 if uri.endswith("train_face.csv") else 3) and extra["rejected"] == 1
        assert extra["report"] == doc["run"]["report"]


def test_task_logs_show_progress_and_no_credentials(runs):
    out = runs["output"]
    assert "pull: " in out and "crop: " in out and "photos/s" in out and "detect on cpu" in out
    assert "miss rate" in out and "mask1" in out  # the per-class table
    assert runs["secret"] not in out
