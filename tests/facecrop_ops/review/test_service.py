"""The Face review service against a real S3 API (moto's server) through an Airflow connection,
and the next run applying what a reviewer decided (the task bodies, without a scheduler)."""

from __future__ import annotations

import csv
import io
import json
import threading

import pytest

from facecrop_dev import samples
from facecrop_dev.local_s3 import moto_server
from facecrop_ops import tasks
from facecrop_ops.config.crop import Settings
from facecrop_ops.dataset import manifest
from facecrop_ops.dataset.corrections import CorrectionError
from facecrop_ops.dataset.locations import S3Location
from facecrop_ops.dataset.run_folder import CORRECTIONS_CSV, CORRECTIONS_DIR
from facecrop_ops.review import service
from facecrop_ops.vision.geometry import padded_box
from facecrop_ops.vision.imaging import cut_face, decode_rgb, encode_face

BUCKET = "review-data"


@pytest.fixture()
def s3(monkeypatch, request):
    """moto's S3 server with the dataset in a bucket of this test's own (moto keeps buckets
    across servers of one process)."""
    global BUCKET
    BUCKET = "rv-" + request.node.name.replace("_", "-")[5:45].strip("-")
    with moto_server() as server:
        for key, value in server.airflow_connection_env().items():
            monkeypatch.setenv(key, value)
        service._stores.clear()
        server.upload(BUCKET, "raw/", samples.dataset(n_people=2, n_eval=1, junk=False))
        yield server


def run(s3, run_id, **extra):
    params = {"source_uri": f"s3://{BUCKET}/raw", "dest_uri": f"s3://{BUCKET}/out", **extra}
    store = tasks.open_store(params)
    for ref in tasks.plan(params, run_id, store):
        tasks.crop_shard(params, run_id, ref, store, workers=1)
    tasks.publish(params, run_id, store)
    service._manifests.clear()
    the_run = service.Run(run_id, "success", "", service.run_params(params))
    return the_run, service.store_for(the_run)


def rows(store, run_id):
    return {r.source: r for r in manifest.loads(store.get(BUCKET, f"out/_facecrop/runs/{run_id}/manifest.csv").decode())}


def test_the_page_sees_misses_and_least_confident_detections_and_only_the_runs_photos(s3):
    first, store = run(s3, "first")
    doc = service.items(first, store)
    kinds = {i["source"]: i["kind"] for i in doc["items"]}
    manifest_rows = rows(store, "first")
    assert {k for k, kind in kinds.items() if kind == "missed"} == {k for k, r in manifest_rows.items() if r.status == "fallback"}
    assert "low confidence" in kinds.values() and doc["margins"] == [30, 30, 60, 30]
    some = next(iter(kinds))
    assert service.photo(first, store, some) == store.get(BUCKET, "raw/" + some)
    with pytest.raises(service.NotFound, match="is not a photo of run first"):
        service.photo(first, store, "train_data.csv")  # nothing but the run's photos is served


def test_decisions_are_checked_kept_one_object_each_and_listed_in_corrections_csv(s3):
    first, store = run(s3, "first")
    photo = "train/images/000001_male_White_47/mask1.jpg"
    with pytest.raises(CorrectionError, match="leaves the 384x512 photo"):
        service.record(first, store, photo, "box", [0, 0, 500, 100], "ann")
    with pytest.raises(service.NotFound):
        service.record(first, store, "train/images/nobody/mask1.jpg", "no_face", None, "ann")
    threads = [threading.Thread(target=service.record, args=(first, store, photo, "box", [100, 100, 200, 220], name))
               for name in ("ann", "bob", "cy", "di")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    kept = store.list(S3Location(BUCKET, "out/" + CORRECTIONS_DIR + "/"))
    listed = list(csv.DictReader(io.StringIO(store.get(BUCKET, "out/" + CORRECTIONS_CSV).decode())))
    assert len(kept) == 4 and sorted(r["reviewer"] for r in listed) == ["ann", "bob", "cy", "di"]  # four at once, none lost
    assert {r["etag"] for r in listed} == {rows(store, "first")[photo].etag}


def test_the_next_run_applies_a_box_and_a_no_face_to_exactly_those_photos_and_reports_stale_ones(s3):
    first, store = run(s3, "first")
    boxed, left_out, changed = ("train/images/000001_male_White_47/mask1.jpg", "train/images/000002_male_White_51/normal.jpg",
                                "train/images/000002_male_White_51/mask2.jpg")
    service.record(first, store, boxed, "box", [120, 140, 250, 300], "ann")
    service.record(first, store, left_out, "no_face", None, "bob")
    service.record(first, store, changed, "box", [10, 10, 100, 100], "ann")
    s3.client().copy_object(Bucket=BUCKET, Key="raw/" + changed, CopySource=f"{BUCKET}/raw/train/images/000001_male_White_47/mask2.jpg")

    second, _ = run(s3, "second")
    after = rows(store, "second")
    assert {k for k, r in after.items() if not r.reused} == {boxed, left_out, changed}  # the changed photo itself, not its box
    assert (after[boxed].method, after[boxed].box) == ("manual", (120.0, 140.0, 250.0, 300.0))
    assert after[boxed].correction and after[changed].method != "manual"
    assert after[left_out].status == "excluded" and after[left_out].output == ""
    rgb = decode_rgb(store.get(BUCKET, "raw/" + boxed))
    s = Settings()
    crop = padded_box((120, 140, 250, 300), rgb.shape[1], rgb.shape[0], s.margins)
    expected = encode_face(cut_face(rgb, crop, (s.output_width, s.output_height), s.interpolation), boxed, s.jpeg_quality)
    assert store.get(BUCKET, "out/" + after[boxed].output) == expected
    assert not store.get_if_exists(BUCKET, "out/" + left_out.replace("/images/", "/faces/"))
    published = store.get(BUCKET, "out/train_face.csv").decode()
    assert left_out.replace("/images/", "/faces/") not in published
    plan = json.loads(store.get(BUCKET, "out/_facecrop/runs/second/plan.json"))
    assert [c["source"] for c in plan["stale_corrections"]] == [changed] and plan["corrected"] == 2
    assert [i["source"] for i in service.items(second, store)["stale"]] == [changed]
    doc = tasks.record_metrics({"source_uri": f"s3://{BUCKET}/raw", "dest_uri": f"s3://{BUCKET}/out"}, "second", store)
    assert doc["classes"]["all"]["corrected"] == 2
    page = store.get(BUCKET, "out/_facecrop/runs/second/report.html").decode()
    assert "Stale corrections: 1" in page and f"{changed}: box by ann at" in page
    third, _ = run(s3, "third")
    assert {k for k, r in rows(store, "third").items() if not r.reused} == {left_out}  # applied corrections stay applied


def test_with_the_training_preset_a_folder_holding_an_excluded_photo_is_reused_once_settled(s3):
    training = {"preset": "training"}
    first, store = run(s3, "first", **training)
    left_out = "train/images/000001_male_White_47/mask3.jpg"
    service.record(first, store, left_out, "no_face", None, "ann")
    run(s3, "second", **training)  # the exclusion changes the folder's siblings: cropped again
    assert {k.rsplit("/", 1)[0] for k, r in rows(store, "second").items() if not r.reused} == {left_out.rsplit("/", 1)[0]}
    run(s3, "third", **training)
    third = rows(store, "third")
    assert {k for k, r in third.items() if not r.reused} == {left_out} and third[left_out].status == "excluded"


def test_crop_is_right_on_a_reviewers_crop_keeps_it_and_undo_brings_back_detection(s3):
    first, store = run(s3, "first")
    photo = "train/images/000001_male_White_47/mask1.jpg"
    service.record(first, store, photo, "box", [120, 140, 250, 300], "ann")
    second, _ = run(s3, "second")
    service.record(second, store, photo, "accept", None, "bob")
    run(s3, "third")
    assert rows(store, "third")[photo].method == "manual" and rows(store, "third")[photo].reused
    third = service.Run("third", "success", "", second.params)
    service.record(third, store, photo, "reset", None, "bob")
    run(s3, "fourth")
    assert rows(store, "fourth")[photo].method == rows(store, "first")[photo].method != "manual"
    with pytest.raises(CorrectionError, match="not four finite numbers"):
        service.record(third, store, photo, "box", [float("nan"), 1, 50, 50], "ann")
