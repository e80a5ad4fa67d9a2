import sys

import numpy as np
import pytest

from facecrop_dev import samples
from facecrop_ops.config.crop import Settings, SettingsError
from facecrop_ops.dataset.naming import face_path
from facecrop_ops.vision.detector import Detector
from facecrop_ops.vision.imaging import decode_rgb
from facecrop_ops.vision.processor import Photo, crop_photos


@pytest.fixture(scope="module")
def photos(sample_dataset):
    keys = sorted(k for k in sample_dataset if "/images/" in k and "/._" not in k)
    return [Photo(k, face_path(k), data=sample_dataset[k]) for k in keys]


@pytest.fixture(scope="module")
def good(photos):
    return [p for p in photos if p.data and not p.data.startswith(b"<html>")]


@pytest.fixture(scope="module")
def results(photos):
    return list(crop_photos(photos, Settings(device="cpu", workers=1)))


def test_one_row_per_photo_in_input_order(photos, results):
    assert [r.row.source for r in results] == [p.source for p in photos]


def test_every_good_photo_gives_a_210x280_face_and_bad_ones_an_error_row(results):
    errors = {r.row.source: r.row.error for r in results if r.row.status == "error"}
    assert errors == {
        "eval/images/0000000000000000000000000000000000000000.jpg": "not an image (unrecognised content)",
        "train/images/000006_male_Asian_52/mask3.png": "empty file (0 bytes)",
    }
    for r in results:
        if r.row.status == "error":
            assert r.face is None and r.row.output == ""
        else:
            assert decode_rgb(r.face).shape == (280, 210, 3)
            assert r.row.output == face_path(r.row.source)
    statuses = {r.row.status for r in results}
    assert statuses == {"detected", "fallback", "error"}


def test_fallback_rows_use_the_centre_box_and_detected_rows_the_padded_box(results):
    for r in results:
        if r.row.status == "fallback":
            assert r.row.crop == (64, 86, 320, 426) and r.row.box is None
        elif r.row.status == "detected":
            x1, y1, x2, y2 = (int(v) for v in r.row.box)
            assert r.row.crop == (max(0, x1 - 30), max(0, y1 - 60), min(384, x2 + 30), min(512, y2 + 30))


def test_worker_processes_give_identical_faces(photos, results):
    parallel = list(crop_photos(photos, Settings(device="cpu", batch_size=4, workers=2)))
    assert [(r.row.status, r.row.crop, r.row.error) for r in parallel] == [(r.row.status, r.row.crop, r.row.error) for r in results]
    assert [r.face for r in parallel] == [r.face for r in results]
    for p, r in zip(parallel, results):  # other batches and thread counts round floats differently
        assert (p.row.box is None) == (r.row.box is None)
        if p.row.box is not None:
            assert np.allclose(p.row.box, r.row.box, atol=1e-3)


def test_photos_read_from_paths_and_unreadable_paths(tmp_path, good):
    path = tmp_path / "normal.jpg"
    path.write_bytes(good[0].data)
    out = list(crop_photos(
        [Photo("p/normal.jpg", "f/normal.jpg", path=str(path)), Photo("p/gone.jpg", "f/gone.jpg", path=str(tmp_path / "gone.jpg"))],
        Settings(device="cpu", workers=1),
    ))
    assert out[0].row.status in ("detected", "fallback") and out[0].row.photo_class == "normal"
    assert out[1].row.status == "error" and out[1].row.error.startswith("cannot read")


def test_a_photo_too_small_to_detect_in_is_an_error_not_a_crash():
    tiny = samples.encode(np.full((15, 40, 3), 90, np.uint8))
    big = samples.encode(samples.portrait(3).rgb)
    out = list(crop_photos([Photo("t.jpg", "ft.jpg", data=tiny), Photo("b.jpg", "fb.jpg", data=big)], Settings(device="cpu")))
    assert out[0].row.status == "error" and "too small to detect in (40x15 px < min_face_size 20)" in out[0].row.error
    assert out[1].row.status in ("detected", "fallback")


def test_photos_of_other_sizes_are_cropped_in_their_own_frame():
    photo = samples.portrait(4, size=(600, 800), scale=2.5)
    out = list(crop_photos([Photo("x/normal.jpg", "y/normal.jpg", data=samples.encode(photo.rgb))], Settings(device="cpu")))
    row = out[0].row
    assert row.status == "detected"
    assert 0 <= row.crop[0] < row.crop[2] <= 600 and 0 <= row.crop[1] < row.crop[3] <= 800


def test_a_detector_fault_on_one_photo_costs_only_that_photo(monkeypatch, good):
    poisoned = good[3]
    poison_pixels = decode_rgb(poisoned.data)
    real_detect = Detector.detect

    def flaky(self, images):
        if any(img.shape == poison_pixels.shape and np.array_equal(img, poison_pixels) for img in images):
            raise RuntimeError("CUDA error: an illegal memory access was encountered")
        return real_detect(self, images)

    monkeypatch.setattr(Detector, "detect", flaky)
    out = list(crop_photos(good[:8], Settings(device="cpu", workers=1)))
    bad = [r.row for r in out if r.row.status == "error"]
    assert [r.source for r in bad] == [poisoned.source]
    assert bad[0].error == "detection failed: RuntimeError: CUDA error: an illegal memory access was encountered"


def test_a_detector_that_fails_on_every_photo_fails_the_run(monkeypatch, good):
    def broken(self, images):
        raise RuntimeError("CUDA error: device-side assert triggered")

    monkeypatch.setattr(Detector, "detect", broken)
    with pytest.raises(RuntimeError, match="device-side assert"):
        list(crop_photos(good[:4], Settings(device="cpu", workers=1)))


def test_bad_settings_stop_before_any_photo_is_touched():
    class Exploding(Photo):
        def read(self):
            raise AssertionError("photo was read")

    with pytest.raises(SettingsError, match="batch_size"):
        list(crop_photos([Exploding("a.jpg", "b.jpg")], Settings(batch_size=0)))


def _crop_in_a_daemon(photos, queue):
    """What a Celery prefork worker runs: a daemonic process (Airflow's task process inherits
    the mark). Reports the processor's log lines and how many faces came back."""
    import logging

    lines = []
    handler = logging.Handler()
    handler.emit = lambda record: lines.append(record.getMessage())
    logging.getLogger("facecrop_ops.vision.processor").addHandler(handler)
    logging.getLogger("facecrop_ops.vision.processor").setLevel(logging.INFO)
    try:
        results = list(crop_photos(photos, Settings(device="cpu", batch_size=4, workers=2)))
        queue.put((lines, sum(r.face is not None for r in results)))
    except Exception as exc:  # noqa: BLE001 - reported to the test
        queue.put(([repr(exc)], 0))


def test_a_daemonic_process_still_detects_in_worker_processes(good):
    import multiprocessing

    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    daemon = ctx.Process(target=_crop_in_a_daemon, args=(good[:24], queue), daemon=True)
    daemon.start()
    lines, faces = queue.get(timeout=120)
    daemon.join(30)
    assert faces == 24
    assert any(line.startswith("detection ran in 2 worker process(es)") for line in lines), lines


def _start_pool_then_hang(photos, queue):
    import os
    import time

    from facecrop_ops.vision import processor

    results = processor._run(iter([photos[:4], photos[4:8]]), Settings(device="cpu", batch_size=4), 2)
    next(results)  # the pool is up; report its workers and wait to be killed
    import psutil

    queue.put([c.pid for c in psutil.Process(os.getpid()).children()])
    time.sleep(600)


def test_worker_processes_die_with_the_task_process(good):
    """A task process killed by Airflow or the OOM killer leaves no detector behind."""
    import multiprocessing
    import os
    import signal

    import psutil

    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    task = ctx.Process(target=_start_pool_then_hang, args=(good, queue))
    task.start()
    workers = queue.get(timeout=120)
    assert len(workers) == 2 and all(psutil.pid_exists(pid) for pid in workers)
    os.kill(task.pid, signal.SIGKILL)
    task.join(10)
    gone, alive = psutil.wait_procs([psutil.Process(pid) for pid in workers if psutil.pid_exists(pid)], timeout=10)
    assert not [p for p in alive if p.status() != psutil.STATUS_ZOMBIE]


_RSS_KEPT = """
import sys
import numpy as np
from facecrop_ops.vision import processor
if sys.argv[1] == "keep":
    processor._keep_freed_memory()
def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096
temp = np.ones(64 << 20, np.uint8)  # a batch's temporaries: written, then freed
held = rss()
del temp
print(held - rss())
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc settings: Linux only")
def test_detection_processes_keep_freed_memory_for_the_next_batch():
    """Each batch allocates the same large temporaries; a worker keeps what it frees instead of
    paying page faults for it again on every batch (the default hands it back at once).
    Fresh interpreters: this one may have detected alone and kept its memory already."""
    import subprocess

    released = {
        mode: int(subprocess.run([sys.executable, "-c", _RSS_KEPT, mode], capture_output=True, text=True, check=True).stdout)
        for mode in ("default", "keep")
    }
    assert released["default"] > 48 << 20  # by default the 64 MB go back to the kernel
    assert released["keep"] < 8 << 20  # kept for the next batch


@pytest.fixture(scope="module")
def sittings():
    """Two people of one sitting each (samples.sitting knows their true faces), and, alone in
    an eval folder, a copy of a masked photo MTCNN misses."""
    photos, truth = [], {}
    for person in (0, 2):
        for key, portrait in samples.sitting(person):
            photos.append(Photo(key, face_path(key), data=samples.encode(portrait.rgb)))
            truth[key] = portrait.face_box
    lonely = next(p for p in photos if p.source.endswith("000001_sitting/mask5.jpg"))
    photos.insert(0, Photo("eval/images/lonely.jpg", "eval/faces/lonely.jpg", data=lonely.data))
    truth["eval/images/lonely.jpg"] = truth[lonely.source]
    return photos, truth


def test_misses_are_rescued_from_their_own_person_folder_only(sittings):
    from facecrop_ops.reporting import metrics
    from facecrop_ops.vision.geometry import iou, padded_box

    photos, truth = sittings
    reference = {r.row.source: r.row for r in crop_photos(photos, Settings(device="cpu", workers=1))}
    rescued = {r.row.source: r.row for r in crop_photos(photos, Settings(device="cpu", workers=2, fallback="sibling", second_pass=True))}
    missed = sorted(k for k, r in reference.items() if r.status == "fallback")
    assert missed == ["eval/images/lonely.jpg", "train/images/000001_sitting/mask5.jpg", "train/images/000003_sitting/mask1.jpg"]
    assert [rescued[k].method for k in missed] == ["centre", "sibling", "second_pass"]  # no sibling for a stranger
    assert all(rescued[k].status == "fallback" for k in missed)  # status still says what the first pass found
    for k in missed[1:]:
        ideal = padded_box(truth[k], 384, 512)
        assert iou(rescued[k].crop, ideal) > 0.85 > iou(reference[k].crop, ideal)
    assert {k: r.crop for k, r in rescued.items() if k not in missed} == {k: r.crop for k, r in reference.items() if k not in missed}
    totals = metrics.per_class(rescued.values())["all"]
    assert (totals.fallback, totals.rescued) == (3, 2)


def test_chunks_keep_person_folders_whole_only_when_siblings_matter():
    from facecrop_ops.dataset.naming import CLASSES
    from facecrop_ops.vision.processor import _chunks

    photos = [Photo(f"train/images/p{i}/{cls}.jpg", "") for i in range(3) for cls in CLASSES]
    assert [len(c) for c in _chunks(photos, Settings(batch_size=8))] == [16, 5]
    whole = _chunks(photos, Settings(batch_size=8, fallback="sibling"))
    assert [sorted({p.source.split("/")[2] for p in c}) for c in whole] == [["p0", "p1"], ["p2"]]


def test_auto_centre_crops_are_sized_by_the_detections_and_come_last(sittings):
    from facecrop_ops.vision.geometry import Box
    from facecrop_ops.vision.rescue import auto_fallback_size

    photos, _ = sittings
    data = {p.source: p.data for p in photos}
    reads = []

    def reread(photo):
        reads.append(photo.source)
        assert photo.data is None  # only the name was kept while waiting
        return data[photo.source]

    results = list(crop_photos(photos, Settings(device="cpu", workers=2, fallback_size="auto"), reread=reread))
    centre = [r for r in results if r.row.method == "centre"]
    assert len(results) == len(photos) and results[-len(centre):] == centre and sorted(reads) == sorted(r.row.source for r in centre)
    size = auto_fallback_size(Box(*r.row.crop) for r in results if r.row.status == "detected")
    assert size != (256, 340)
    for r in centre:
        x1, y1, x2, y2 = r.row.crop
        assert (x2 - x1, y2 - y1) == size and decode_rgb(r.face).shape == (280, 210, 3)


def test_template_matching_finds_the_misses_and_changes_no_face_mtcnn_found(hard_photos):
    from facecrop_ops.reporting import metrics
    from facecrop_ops.vision.geometry import iou

    photos = [Photo(p.key, face_path(p.key), data=p.data) for p in hard_photos]
    truth = {p.key: p.true_box for p in hard_photos}
    reference = {r.row.source: r for r in crop_photos(photos, Settings(device="cpu", workers=1))}
    found = {r.row.source: r for r in crop_photos(photos, Settings(device="cpu", workers=2, template_match=True))}
    missed = sorted(k for k, r in reference.items() if r.row.status == "fallback")
    assert len(missed) == 5
    for k in missed:
        row = found[k].row
        assert (row.status, row.method) == ("fallback", "template")  # status still says what the first pass found
        assert iou(row.box, truth[k]) >= 0.5 and row.prob >= Settings().template_min_score
        assert decode_rgb(found[k].face).shape == (280, 210, 3)
    for k, r in reference.items():
        if k not in missed:  # every face MTCNN found: the same row, the same bytes
            assert (found[k].row, found[k].face) == (r.row, r.face)
    totals = metrics.per_class(r.row for r in found.values())["all"]
    assert (totals.fallback, totals.rescued, totals.rescued_template) == (5, 5, 5)


def test_the_training_preset_crops_every_face_mtcnn_found_as_the_reference_does(hard_photos):
    from facecrop_ops.config.params import PRESETS

    photos = [Photo(p.key, face_path(p.key), data=p.data) for p in hard_photos if p.photo_class in ("normal", "mask1")]
    reference = list(crop_photos(photos, Settings(device="cpu", workers=1)))
    training = list(crop_photos(photos, Settings(device="cpu", workers=1, **PRESETS["training"])))
    normal = [(r.row, r.face) for r in reference if r.row.photo_class == "normal"]
    assert normal and normal == [(r.row, r.face) for r in training if r.row.photo_class == "normal"]
    assert {r.row.method for r in training if r.row.status == "fallback"} <= {"template", "second_pass", "sibling"}


def test_a_sitting_stays_whole_whatever_its_file_names_and_a_huge_one_carries_its_reference_photos():
    from facecrop_ops.vision import processor

    settings = Settings(batch_size=8, fallback="sibling")
    eval_photos = [Photo(f"eval/images/{i:02d}.jpg", "") for i in range(10)]
    sitting = [Photo(f"train/images/p/{name}.jpg", "") for name in ("incorrect_mask", "mask1", "mask_old", "normal")]
    chunks = list(processor._chunks(eval_photos + sitting, settings))
    assert [p.source for p in chunks[-1] if p.source.startswith("train/")] == [p.source for p in sitting]  # one chunk

    big = [Photo("train/images/q/normal.jpg", ""), Photo("train/images/q/incorrect_mask.jpg", "")]
    big += [Photo(f"train/images/q/extra_{i:03d}.jpg", "") for i in range(150)]
    parts = list(processor._chunks(big, settings))
    assert len(parts) > 2 and sorted(p.source for c in parts for p in c if not p.passenger) == sorted(p.source for p in big)
    for part in parts:  # every part holds the references, as passengers where they are not its own
        assert {"train/images/q/normal.jpg", "train/images/q/incorrect_mask.jpg"} <= {p.source for p in part}


def test_a_sitting_cut_in_parts_gets_the_crops_it_gets_whole(hard_photos, monkeypatch):
    from facecrop_ops.config.params import PRESETS
    from facecrop_ops.dataset.naming import sitting_order
    from facecrop_ops.vision import processor

    photos = sorted((Photo(p.key, face_path(p.key), data=p.data) for p in hard_photos if "000001_" in p.key),
                    key=lambda p: sitting_order(p.source))
    training = Settings(device="cpu", workers=1, batch_size=2, **PRESETS["training"])
    whole = [(r.row, r.face) for r in crop_photos(photos, training)]
    monkeypatch.setattr(processor, "SITTING_PARTS", 1)  # parts of 4 photos: the references travel with each
    parted = [(r.row, r.face) for r in crop_photos(photos, training)]
    assert sorted(parted, key=lambda x: x[0].source) == sorted(whole, key=lambda x: x[0].source)
    assert any(row.method == "template" for row, _ in parted)


def test_a_reference_photo_of_someone_else_is_passed_over_and_the_manifest_says_so(hard_photos):
    from facecrop_ops.config.params import PRESETS
    from facecrop_ops.vision.geometry import iou, padded_box

    astronaut = [p for p in hard_photos if "000001_" in p.key]
    stranger = next(p for p in hard_photos if "000004_" in p.key and p.photo_class == "normal")
    photos = [Photo(p.key, face_path(p.key), data=stranger.data if p.photo_class == "normal" else p.data) for p in astronaut]
    truth = {p.key: p.true_box for p in astronaut}
    rows = {r.row.source: r.row for r in crop_photos(photos, Settings(device="cpu", workers=1, **PRESETS["training"]))}
    rescued = [r for r in rows.values() if r.status == "fallback" and r.method != "centre"]
    assert rescued and all("normal disagrees with the sitting's other photos" in r.reference for r in rescued)
    assert all(iou(r.crop, padded_box(truth[r.source], 384, 512)) > 0.7 for r in rescued)


def test_a_photo_too_big_for_the_worker_is_an_error_row_naming_the_fix_and_the_rest_go_on(good, monkeypatch):
    from facecrop_ops.vision import processor

    big = Photo("train/images/big/mask1.jpg", "train/faces/big/mask1.jpg",
                data=samples.encode(np.zeros((3000, 2000, 3), np.uint8)))
    monkeypatch.setattr(processor, "available_memory", lambda: 200_000_000)  # 100 MB a photo: 6 MP takes 102 MB
    rows = {r.row.source: r.row for r in crop_photos([*good[:3], big], Settings(device="cpu", workers=1))}
    assert (rows[big.source].status, rows[big.source].reason) == ("error", "too_large")
    assert "2000x3000 px needs ~0.1 GB to decode and detect, over the 0.1 GB" in rows[big.source].error
    assert "give the worker more memory" in rows[big.source].error
    assert all(rows[p.source].status != "error" for p in good[:3])


def test_a_photo_over_the_detection_size_is_detected_on_a_smaller_copy_its_box_scaled_back(good, monkeypatch):
    from facecrop_ops.vision import detector
    from facecrop_ops.vision.geometry import iou

    full = list(crop_photos(good[:4], Settings(device="cpu", workers=1)))
    monkeypatch.setattr(detector, "DETECT_MAX_PIXELS", 384 * 512 // 4)  # half the width and height
    small = list(crop_photos(good[:4], Settings(device="cpu", workers=1)))
    for a, b in zip(full, small):
        if a.row.status == "detected" and b.row.status == "detected":
            assert iou(a.row.box, b.row.box) > 0.8 and b.row.box != a.row.box
    assert sum(r.row.status == "detected" for r in small) >= 3
