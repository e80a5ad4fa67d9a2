"""The Face review service against a real S3 API (moto's server) through an Airflow connection,
and the next run applying what a reviewer decided (the task bodies, without a scheduler)."""

from __future__ import annotations

import csv
import io
import json
import threading

import numpy as np
import pytest

from facecrop_dev import samples
from facecrop_dev.local_s3 import moto_server
from facecrop_ops import tasks
from facecrop_ops.config.crop import Settings
from facecrop_ops.dataset import corrections, manifest
from facecrop_ops.dataset.corrections import CorrectionError
from facecrop_ops.dataset.locations import S3Location
from facecrop_ops.dataset.run_folder import CORRECTIONS_CSV, CORRECTIONS_DIR
from facecrop_ops.review import service
from facecrop_ops.vision.geometry import padded_box
from facecrop_ops.vision.imaging import cut_face, decode_rgb, encode_face

BUCKET = "review-data"
PARAMS = {}


@pytest.fixture()
def s3(monkeypatch, request):
    """moto's S3 server with the dataset in a bucket of this test's own (moto keeps buckets
    across servers of one process)."""
    global BUCKET, PARAMS
    BUCKET = "rv-" + request.node.name.replace("_", "-")[5:45].strip("-")
    PARAMS = {"source_uri": f"s3://{BUCKET}/raw", "dest_uri": f"s3://{BUCKET}/out"}
    with moto_server() as server:
        for key, value in server.airflow_connection_env().items():
            monkeypatch.setenv(key, value)
        service._stores.clear()
        server.upload(BUCKET, "raw/", samples.dataset(n_people=2, n_eval=1, junk=False))
        yield server


def run(s3, run_id, **extra):
    params = {**PARAMS, **extra}
    store = tasks.open_store(params)
    for ref in tasks.plan(params, run_id, store):
        tasks.crop_shard(params, run_id, ref, store, workers=1)
    tasks.publish(params, run_id, store)
    service._reviews.clear()
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
    assert service.photo(first, store, some) == (store.get(BUCKET, "raw/" + some), "image/jpeg")
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
    assert len(kept) == 4  # four at once, none lost
    run(s3, "second")  # its plan lists them in corrections.csv
    listed = list(csv.DictReader(io.StringIO(store.get(BUCKET, "out/" + CORRECTIONS_CSV).decode())))
    assert sorted(r["reviewer"] for r in listed) == ["ann", "bob", "cy", "di"]
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


def _objects(store):
    return store.list(S3Location(BUCKET, "out/" + CORRECTIONS_DIR + "/"))


def test_malformed_decision_objects_never_stop_the_page_a_save_or_a_run(s3):
    first, store = run(s3, "first")
    photo = "train/images/000001_male_White_47/mask1.jpg"
    good = json.loads(corrections.make(photo, rows(store, "first")[photo].etag, "box", [100, 100, 200, 220], "ann",
                                       "2026-12-01T10:00:00.000+00:00", "0", (384, 512)).to_json())
    junk = [b"[]", b"null", b'"box"', b"3", b"{half-written",
            *(json.dumps({**good, **change}).encode() for change in (
                {"box": [100, 100, 200, 220, 5]}, {"box": []}, {"box": {}}, {"time": 5}, {"source": None},
                {"reviewer": ["x"]}, {"decision": "delete"}))]
    for i, data in enumerate(junk):
        name = f"20261201T1000{i:02d}.000+0000-{i:08x}"
        store.put(BUCKET, f"out/{CORRECTIONS_DIR}/{name}.json", data.replace(good["id"].encode(), name.encode()),
                  "application/json")
    doc = service.items(first, store)  # the page
    assert doc["unreadable"]["count"] == len(junk) and doc["unreadable"]["note"].startswith(f"{len(junk)} decision object(s)")
    assert all(i["decision"] is None for i in doc["items"])
    service.record(first, store, photo, "no_face", None, "bob")  # a save
    second, _ = run(s3, "second")  # a run: plan, crop_shard, publish
    plan = json.loads(store.get(BUCKET, "out/_facecrop/runs/second/plan.json"))
    assert plan["unreadable_decisions"]["count"] == len(junk)
    assert rows(store, "second")[photo].status == "excluded"  # the one readable decision, applied
    assert not [r for r in rows(store, "second").values() if r.method == "manual" and r.box == (100.0, 100.0, 200.0, 220.0)]


def test_a_refused_save_writes_nothing(s3):
    first, store = run(s3, "first")
    photo = "train/images/000001_male_White_47/mask1.jpg"
    for decision, box, why in (("box", [1, 2, 3], "four numbers"), ("box", [True, True, 300, 400], "four numbers"),
                               ("box", [0, 0, 500, 100], "leaves the 384x512 photo"), ("box", None, "four numbers"),
                               ("delete", None, "decision must be one of"), (["box"], None, "decision must be one of")):
        with pytest.raises(CorrectionError, match=why):
            service.record(first, store, photo, decision, box, "ann")
    assert _objects(store) == []


def test_a_box_is_checked_against_the_photo_the_run_cropped_never_another_version(s3):
    first, store = run(s3, "first")
    photo = "train/images/000001_male_White_47/mask1.jpg"
    original = store.get(BUCKET, "raw/" + photo)
    big = encode_face(np.zeros((2000, 2000, 3), np.uint8), "x.jpg")
    store.put(BUCKET, "raw/" + photo, big, "image/jpeg")  # swapped for a bigger photo
    with pytest.raises(service.Changed, match="changed or was deleted since run first cropped it: review the latest run"):
        service.record(first, store, photo, "box", [0, 0, 1900, 1900], "ann")
    store.put(BUCKET, "raw/" + photo, original, "image/jpeg")  # swapped back: the photo the run cropped
    with pytest.raises(CorrectionError, match="leaves the 384x512 photo"):
        service.record(first, store, photo, "box", [0, 0, 1900, 1900], "ann")
    assert _objects(store) == []


def test_the_server_never_decodes_a_photo_to_save_a_box_and_refuses_oversized_ones(s3, monkeypatch):
    big = encode_face(np.random.default_rng(0).integers(0, 255, (1400, 1000, 3), dtype=np.uint8), "x.jpg")
    s3.upload(BUCKET, "raw/", [("train/images/000009_female_Asian_30/mask1.jpg", big)])  # no face: a miss to review
    first, store = run(s3, "first")
    assert len(big) > 1_000_000
    capped = service.Run("first", "success", "", service.run_params({**PARAMS, "max_photo_megabytes": 1}))
    with pytest.raises(service.TooLarge, match=r"is \d MB, over the run's max_photo_megabytes 1: it is not shown"):
        service.photo(capped, store, "train/images/000009_female_Asian_30/mask1.jpg")
    from facecrop_ops.vision import imaging

    monkeypatch.setattr(imaging, "decode_rgb", lambda *a, **k: pytest.fail("a box save decoded the photo"))
    made = service.record(first, store, "train/images/000001_male_White_47/mask1.jpg", "box", [10, 10, 380, 500], "ann")
    assert made.size == (384, 512)


def test_a_run_waiting_at_the_review_gate_shows_its_misses_before_it_publishes(s3):
    params = {**PARAMS, "photos_per_shard": 7, "review_gate": True, "miss_rate_limits": {"all": 0.0}}
    store = tasks.open_store(params)
    refs = tasks.plan(params, "waiting", store)
    waiting = service.Run("waiting", "running", "", service.run_params(params))
    with pytest.raises(service.NotFound, match="is still cropping"):
        service.items(waiting, store)
    for ref in refs:
        tasks.crop_shard(params, "waiting", ref, store, workers=1)
    assert "Detection missed more faces than `miss_rate_limits` allows" in tasks.needs_review(params, "waiting", store)
    service._reviews.clear()
    doc = service.items(waiting, store)
    assert not store.get_if_exists(BUCKET, "out/_facecrop/runs/waiting/manifest.csv")
    assert {i["source"] for i in doc["items"] if i["kind"] == "missed"}  # what the gate asks about, before publishing


def test_a_run_of_an_earlier_version_is_read_from_its_folder(s3):
    run_id = "manual__2026-12-01T10:00:00+00:00"
    first, store = run(s3, run_id)
    files = service.RunStore(store, first.params.dest)
    new, legacy = files.dest.run(run_id), files.dest.legacy_run(run_id)
    assert new != legacy and files.run_for_reading(run_id) == new
    for key in store.list(new.loc):
        store.put(BUCKET, legacy.loc.key(new.loc.rel(key)), store.get(BUCKET, key), "text/plain")
    store.delete_many(BUCKET, store.list(new.loc))
    service._reviews.clear()
    assert files.run_for_reading(run_id) == legacy and service.items(first, store)["items"]


def test_stale_decisions_are_listed_apart_and_requests_are_never_echoed_whole(s3):
    first, store = run(s3, "first")
    photo = "train/images/000001_male_White_47/mask1.jpg"
    service.record(first, store, photo, "no_face", None, "ann")
    store.put(BUCKET, "raw/" + photo, store.get(BUCKET, "raw/train/images/000001_male_White_47/mask2.jpg"), "image/jpeg")
    second, _ = run(s3, "second")
    doc = service.items(second, store)
    assert [s["source"] for s in doc["stale"]] == [photo]
    assert all(i["decision"] is None for i in doc["items"] if i["source"] == photo)  # no badge for a stale decision
    with pytest.raises(service.NotFound) as err:
        service.photo(second, store, "x" * 10_000_000)
    assert len(str(err.value)) < 300


def test_a_rotated_photo_is_served_upright_as_the_pipeline_sees_it_and_boxes_fit_it(s3):
    """A WebP (or PNG) with EXIF orientation 6 shows unrotated in Chromium: the page would draw
    the run's boxes on a photo turned a quarter. The server sends it upright, as OpenCV decodes it."""
    import io

    from PIL import Image

    photo = "train/images/000001_male_White_47/mask1.jpg"
    upright = decode_rgb(s3.client().get_object(Bucket=BUCKET, Key="raw/" + photo)["Body"].read())
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to show
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(np.rot90(upright, 1))).save(buf, "WEBP", exif=exif.tobytes(), quality=95)
    rotated = "train/images/000001_male_White_47/mask2.webp"
    s3.client().put_object(Bucket=BUCKET, Key="raw/" + rotated, Body=buf.getvalue())
    first, store = run(s3, "first")
    data, media_type = service.photo(first, store, rotated)
    shown = decode_rgb(data)
    assert media_type == "image/jpeg" and shown.shape == upright.shape  # 384 wide, 512 high, as the crop saw it
    assert rows(store, "first")[rotated].crop[2] <= 384
    made = service.record(first, store, rotated, "box", [10, 10, 380, 500], "ann")
    assert made.size == (384, 512)


def test_a_big_runs_page_reads_only_the_pages_it_shows_and_filters_on_the_server(s3, monkeypatch):
    from facecrop_ops.dataset.run_folder import PlanDoc
    from facecrop_ops.run_store import RunStore

    params = service.run_params(PARAMS)
    store = tasks.open_store(PARAMS)
    files = RunStore(store, params.dest)
    folder = files.run("big")
    files.write_plan(folder, PlanDoc("big", "p", params.source.uri, params.dest.uri, [], ["train/images/"], 5000, 0))
    entries = [{"source": f"train/images/{i:05d}_x/{'mask1' if i % 10 else 'normal'}.jpg", "class": "mask1" if i % 10 else "normal",
                "status": "fallback", "method": "centre" if i % 3 else "yunet", "kind": "missed" if i % 50 else "corrected",
                "prob": None, "box": None, "crop": [1, 1, 2, 2], "etag": "e", "has_face": True} for i in range(5000)]
    files.write_review(folder, entries)
    big = service.Run("big", "success", "", params)
    read = []
    real = RunStore.review_page
    monkeypatch.setattr(RunStore, "review_page", lambda self, f, n: read.append(n) or real(self, f, n))
    first = service.items(big, store)
    assert [i["source"] for i in first["items"]] == [e["source"] for e in entries[:200]] and first["next"]
    assert read == [0] and first["total"] == 5000 and first["kinds"] == {"missed": 4900, "corrected": 100}
    third = service.items(big, store, page=2)
    assert [i["source"] for i in third["items"]] == [e["source"] for e in entries[400:600]] and read == [0, 2]
    corrected = service.items(big, store, kind="corrected", cls="normal")
    assert [i["source"] for i in corrected["items"]] == [e["source"] for e in entries if e["kind"] == "corrected" and e["class"] == "normal"]
    assert not corrected["next"]
    with pytest.raises(service.NotFound):
        service.photo(big, store, "train/images/99999_x/mask1.jpg")  # not shown for review: not served
