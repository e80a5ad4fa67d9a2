"""A bucket as careless users and attackers leave it, through `airflow dags test` on moto's S3
server: pixel bombs, a folder named `images` inside a person folder, a `..` key, a macOS `._`
CSV, a Korean Excel CSV with formulas in it (codec named in capitals), a person folder named
in NFD (macOS) that a CSV names in NFC (Excel), a photo over max_photo_megabytes, a CSV with
Windows line endings. The run ends `success` with every good photo's
face, every CSV row published or rejected with its reason, and no raw object touched; a
misspelt param or a connection that does not exist stops the run in `plan` before any data moves."""

import csv
import io
import json
import sqlite3
import subprocess
import unicodedata

import pytest

from facecrop_dev import hostile, local_run, samples
from facecrop_dev.local_s3 import moto_server
from facecrop_ops.dataset import manifest

BUCKET, PREFIX = "hostile-data", "raw/"
PERSON = "train/images/000001_male_White_47"
NFD = unicodedata.normalize("NFD", "train/images/000009_홍길동_Asian_30")


def snapshot(client):
    return {o["Key"]: o["ETag"] for page in client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET)
            for o in page.get("Contents", [])}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    home = tmp_path_factory.mktemp("airflow")
    with moto_server() as s3:
        files = dict(samples.dataset(n_people=2, n_eval=2, junk=True))
        files[f"{PERSON}/mask2.jpg"] = hostile.jpeg_claiming(20000, 15000)
        files["eval/images/bomb.png"] = hostile.png_claiming(30000, 30000)
        files[f"{PERSON}/images/normal.jpg"] = files[f"{PERSON}/normal.jpg"]
        files[f"{PERSON}/../000002_male_White_51/normal.jpg"] = files[f"{PERSON}/normal.jpg"]
        files["._train_data.csv"] = b"\x00\x05\x16\x07\x00\x02Mac OS X        binary"
        files[f"{NFD}/normal.jpg"] = files[f"{NFD}/mask1.jpg"] = files[f"{PERSON}/normal.jpg"]
        files[f"{PERSON}/mask5.jpg"] = files[f"{PERSON}/mask5.jpg"] + b"\0" * 1_200_000  # over max_photo_megabytes 1
        files["test_data.csv"] = (files["test_data.csv"].decode() + "".join(
            f"{unicodedata.normalize('NFC', NFD)}/{cls}.jpg\n" for cls in ("mask1", "normal"))
        ).replace("\n", "\r\n").encode("cp949")  # the run reads every CSV as CP949
        korean = list(csv.reader(io.StringIO(files["train_data.csv"].decode())))
        korean[0].append("메모")
        for row in korean[1:]:
            row.append("확인")
        korean.append(['=HYPERLINK("http://evil.example/")', "", "", "", "", ""])
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerows(korean)
        files["train_data.csv"] = buf.getvalue().encode("cp949")
        s3.upload(BUCKET, PREFIX, files.items())
        client = s3.client()
        raw = snapshot(client)
        env = local_run.airflow_env(home, s3)
        local_run.prepare_airflow(env)
        source = f"s3://{BUCKET}/{PREFIX}"

        def dags_test(conf):
            return subprocess.run([str(local_run.airflow_bin()), "dags", "test", "facecrop_etl", "--conf", json.dumps(conf)],
                                  env=env, capture_output=True, text=True)

        refused = {"misspelt": dags_test({"source_uri": source, "min_face_sise": 400}),
                   "no connection": dags_test({"source_uri": source, "aws_conn_id": "nobody"})}
        untouched = snapshot(client)
        ran = dags_test({"source_uri": source, "csv_encoding": "CP949", "max_photo_megabytes": 1})
        with sqlite3.connect(home / "airflow.db") as db:
            states = [state for (state,) in db.execute("select state from dag_run order by id")]
        bodies = {k: client.get_object(Bucket=BUCKET, Key=k)["Body"].read() for k in snapshot(client) if "/images/" not in k}
        yield {"raw": raw, "untouched": untouched, "after": snapshot(client), "bodies": bodies, "states": states,
               "refused": refused, "ran": ran}


def test_bad_params_and_connections_fail_the_run_in_plan_with_the_fix_and_nothing_written(runs):
    assert runs["states"][:2] == ["failed", "failed"]
    assert runs["untouched"] == runs["raw"]
    misspelt = runs["refused"]["misspelt"]
    assert "unknown param 'min_face_sise' (did you mean min_face_size?)" in misspelt.stdout + misspelt.stderr
    nobody = runs["refused"]["no connection"]
    assert "aws_conn_id 'nobody' names no Airflow connection: create it" in nobody.stdout + nobody.stderr


def test_the_hostile_run_succeeds_and_crops_every_good_photo(runs):
    assert runs["states"][2] == "success", runs["ran"].stdout[-3000:] + runs["ran"].stderr[-3000:]
    bodies = runs["bodies"]
    (manifest_key,) = [k for k in bodies if k.endswith("/manifest.csv")]
    rows = {r.source: r for r in manifest.loads(bodies[manifest_key].decode())}
    errors = {k: r.error for k, r in rows.items() if r.status == "error"}
    assert errors[f"{PERSON}/mask2.jpg"].startswith("too large to decode: 20000x15000 px")
    assert errors["eval/images/bomb.png"].startswith("too large to decode: 30000x30000 px")
    assert "would lie in an 'images' folder" in errors[f"{PERSON}/images/normal.jpg"]
    assert "'.' or '..' segment" in errors[f"{PERSON}/../000002_male_White_51/normal.jpg"]
    assert errors[f"{PERSON}/mask5.jpg"].startswith("too large to download: 1 MB, over max_photo_megabytes 1")
    assert len(errors) == 5 + 2  # and the sample's zero-byte photo and non-image
    good = [r for r in rows.values() if r.status != "error"]
    assert len(good) == 2 * 7 + 2 - 3 + 2 and all(PREFIX + r.output in bodies for r in good)
    assert not [k for k in bodies if "/faces/" in k and ("/images/" in k or "/../" in k)]


def test_the_korean_csv_is_published_in_cp949_and_its_formula_row_rejected_as_text(runs):
    bodies = runs["bodies"]
    published = bodies[PREFIX + "train_face.csv"].decode("cp949")
    assert published.splitlines()[0].endswith(",메모") and "/images/" not in published
    assert "HYPERLINK" not in published
    (rejects_key,) = [k for k in bodies if k.endswith("/rejects.csv")]
    rejects = bodies[rejects_key].decode()
    assert "'=HYPERLINK" in rejects and "path is not under an images folder" in rejects
    reasons = {r["path"]: r["reason"] for r in csv.DictReader(io.StringIO(rejects))}
    assert reasons[f"{PERSON}/mask2.jpg"].startswith("photo unreadable: too large to decode: 20000x15000 px")
    assert reasons[f"{PERSON}/mask2.jpg"].endswith("raise max_megapixels to crop it")


def test_no_raw_object_was_touched_and_the_hidden_csv_was_skipped(runs):
    after = runs["after"]
    assert {k: v for k, v in after.items() if k in runs["raw"]} == runs["raw"]
    (plan_key,) = [k for k in runs["bodies"] if k.endswith("/plan.json")]
    plan = json.loads(runs["bodies"][plan_key])
    assert "._train_data.csv" in plan["skipped_hidden"] and plan["refused"] == 2


def test_a_csv_naming_nfd_photos_in_nfc_rejects_the_rows_cp949_cannot_hold_and_keeps_its_line_endings(runs):
    """The CSV (CP949, NFC, as Excel writes) names photos macOS uploaded in NFD: each finds its
    photo, but its face's key is NFD jamo, which CP949 cannot write, so the row goes to rejects
    with the fix instead of vanishing or pointing at a key that does not exist."""
    bodies = runs["bodies"]
    published = bodies[PREFIX + "test_face.csv"].decode("cp949")
    assert "홍길동" not in published and published.count("\r\n") == published.count("\n") >= 3  # Windows endings kept
    (rejects_key,) = [k for k in bodies if k.endswith("/rejects.csv")]
    rejected = [r for r in csv.DictReader(io.StringIO(bodies[rejects_key].decode())) if "홍길동" in r["path"]]
    assert sorted(r["path"] for r in rejected) == [f"{unicodedata.normalize('NFC', NFD)}/{c}.jpg" for c in ("mask1", "normal")]
    assert all("cannot be written in cp949: publish the CSVs in utf-8" in r["reason"] for r in rejected)
    assert all(PREFIX + NFD.replace("/images/", "/faces/") + f"/{c}.jpg" in bodies for c in ("mask1", "normal"))
