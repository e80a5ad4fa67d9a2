"""The CLI as a user runs it, checked against a plain per-photo implementation of the notebook."""

import csv
import hashlib
import subprocess
import sys
from pathlib import Path

import cv2
import pytest
from facenet_pytorch import MTCNN

from facecrop_ops.cli import main
from facecrop_ops.dataset import manifest

REPO = Path(__file__).resolve().parents[2]


def notebook_crop_box(path: Path, mtcnn: MTCNN) -> tuple[int, int, int, int]:
    """The reference algorithm, one photo at a time, as the notebook wrote it."""
    img = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
    boxes, _ = mtcnn.detect(img)
    h, w = img.shape[:2]
    if boxes is None:
        return (w - 256) // 2, (h - 340) // 2, (w - 256) // 2 + 256, (h - 340) // 2 + 340
    x1, y1, x2, y2 = map(int, boxes[0])
    return max(0, x1 - 30), max(0, y1 - 60), min(w, x2 + 30), min(h, y2 + 30)


def read_manifest(dst: Path) -> dict[str, dict[str, str]]:
    with open(dst / "manifest.csv", newline="") as f:
        return {row["source"]: row for row in csv.DictReader(f)}


def tree_digest(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() for p in root.rglob("*") if p.is_file()}


@pytest.fixture()
def cropped(dataset_dir, tmp_path, capsys):
    raw = tree_digest(dataset_dir)
    dst = tmp_path / "out"
    assert main(["crop", str(dataset_dir), str(dst), "--device", "cpu"]) == 0
    out = capsys.readouterr()
    return dataset_dir, dst, out, raw


def test_crop_boxes_equal_the_notebooks_on_every_photo(cropped):
    src, dst, _, _ = cropped
    rows = read_manifest(dst)
    mtcnn = MTCNN(keep_all=True, device="cpu")
    checked = 0
    for source, row in rows.items():
        if row["status"] == "error":
            continue
        got = tuple(int(row[f"crop_{k}"]) for k in ("x1", "y1", "x2", "y2"))
        assert got == notebook_crop_box(src / source, mtcnn), source
        checked += 1
    assert checked == 47


def test_every_good_photo_has_a_210x280_face_under_faces(cropped):
    src, dst, _, _ = cropped
    rows = read_manifest(dst)
    assert len(rows) == 49  # 42 train + 7 eval photos; the hidden file is not one
    for source, row in rows.items():
        face = dst / source.replace("/images/", "/faces/")
        if row["status"] == "error":
            assert not face.exists()
            continue
        assert row["output"] == source.replace("/images/", "/faces/")
        img = cv2.imread(str(face))
        assert img.shape == (280, 210, 3), source


def test_summary_table_progress_and_reported_junk(cropped):
    _, _, out, _ = cropped
    lines = out.out.splitlines()
    assert lines[0].split() == ["class", "images", "detected", "fallback", "rescued", "errors", "miss", "rate", "reused", "corrected"]
    assert any(line.startswith("mask1 ") for line in lines)
    all_row = next(line for line in lines if line.startswith("all "))
    assert all_row.split()[1] == "49" and all_row.split()[5] == "2"
    assert "skipped 1 hidden file(s)" in out.out
    assert "error: train/images/000006_male_Asian_52/mask3.png: empty file (0 bytes)" in out.out
    assert "49/49 photos (100%)" in out.err and "photos/s" in out.err


def test_raw_photos_are_never_modified(cropped):
    src, _, _, raw = cropped
    assert tree_digest(src) == raw


def test_dst_equal_to_src_writes_faces_beside_images_and_reruns_cleanly(dataset_dir, capsys):
    raw = tree_digest(dataset_dir)
    assert main(["crop", str(dataset_dir), str(dataset_dir), "--device", "cpu", "--quiet"]) == 0
    first = tree_digest(dataset_dir)
    assert {k: v for k, v in first.items() if k in raw} == raw
    assert "train/faces/000001_male_White_47/normal.jpg" in first
    assert main(["crop", str(dataset_dir), str(dataset_dir), "--device", "cpu", "--quiet"]) == 0
    assert tree_digest(dataset_dir) == first  # faces are not taken for photos; same bytes
    assert len(read_manifest(dataset_dir)) == 49


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "facecrop_ops", *args], capture_output=True, text=True, cwd=REPO)


def test_unreadable_src_is_one_clear_line_and_exit_2(tmp_path):
    result = run_cli("crop", str(tmp_path / "missing"), str(tmp_path / "out"))
    assert result.returncode == 2
    assert result.stderr.strip() == f"facecrop: error: SRC {tmp_path / 'missing'} is not a readable folder"


def test_bad_option_values_name_the_fix(tmp_path):
    result = run_cli("crop", str(tmp_path), str(tmp_path / "out"), "--min-face-size", "0", "--jpeg-quality", "300")
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert "min_face_size=0 is invalid: it must be an integer >= 1 (default 20)" in result.stderr
    assert "jpeg_quality=300 is invalid" in result.stderr
    assert not (tmp_path / "out").exists()


def test_malformed_option_is_refused_by_the_parser(tmp_path):
    result = run_cli("crop", str(tmp_path), str(tmp_path / "out"), "--margins", "30,30,60")
    assert result.returncode == 2 and "expected 4 integers" in result.stderr


def test_dst_equal_to_a_flat_src_is_refused_before_writing(tmp_path, sample_dataset):
    (tmp_path / "p.jpg").write_bytes(sample_dataset["eval/images/14a85236aee7903dcf1d38196ba706e272ab9349.jpg"])
    result = run_cli("crop", str(tmp_path), str(tmp_path))
    assert result.returncode == 2 and "would overwrite it; choose a DST outside SRC" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.jpg"]


def test_rescue_options_parse_into_settings_and_abbreviations_are_refused(tmp_path):
    from facecrop_ops.cli import build_parser, settings_from_args

    args = build_parser().parse_args(["crop", "src", "dst", "--fallback", "sibling", "--fallback-size", "auto", "--second-pass",
                                      "--second-pass-thresholds", "0.3,0.4,0.5", "--second-pass-min-iou", "0.6"])
    s = settings_from_args(args)
    assert (s.fallback, s.fallback_size, s.second_pass, s.second_pass_thresholds, s.second_pass_min_iou) == (
        "sibling", "auto", True, (0.3, 0.4, 0.5), 0.6)
    assert (s.fallback_width, s.fallback_height) == (256, 340)
    fixed = settings_from_args(build_parser().parse_args(["crop", "src", "dst", "--fallback-size", "300x400"]))
    assert (fixed.fallback_size, fixed.fallback_width, fixed.fallback_height, fixed.fallback) == ("fixed", 300, 400, "centre")
    result = run_cli("crop", str(tmp_path), str(tmp_path / "out"), "--fallback-s", "300x400")  # no prefix guessing
    assert result.returncode == 2 and "unrecognized arguments: --fallback-s" in result.stderr


def test_a_sibling_run_of_the_cli_writes_the_method_of_every_crop(dataset_dir, tmp_path):
    out = tmp_path / "out"
    assert run_cli("crop", str(dataset_dir), str(out), "--fallback", "sibling", "--second-pass").returncode == 0
    rows = manifest.loads((out / "manifest.csv").read_text())
    assert {r.method for r in rows if r.status == "detected"} == {"mtcnn"}
    assert {r.method for r in rows if r.status == "fallback"} <= {"second_pass", "sibling", "centre"}
    assert all(r.method == "" for r in rows if r.status == "error")


def test_a_pixel_bomb_in_the_folder_is_an_error_row_and_the_run_goes_on(dataset_dir, tmp_path):
    from facecrop_dev import hostile

    bomb = dataset_dir / "train/images/000001_male_White_47/mask2.jpg"
    bomb.write_bytes(hostile.jpeg_claiming(20000, 15000))
    out = tmp_path / "out"
    result = run_cli("crop", str(dataset_dir), str(out), "--quiet")
    assert result.returncode == 0, result.stderr
    rows = read_manifest(out)
    assert rows["train/images/000001_male_White_47/mask2.jpg"]["error"].startswith("too large to decode: 20000x15000 px")
    assert sum(r["status"] != "error" for r in rows.values()) == len(rows) - 3  # the bomb, the empty photo, the non-image
    assert bomb.read_bytes() == hostile.jpeg_claiming(20000, 15000)


def test_preset_training_turns_on_the_best_measured_rescues_and_refuses_a_contradiction(tmp_path):
    from facecrop_ops.cli import build_parser, settings_from_args
    from facecrop_ops.config.crop import Settings

    def settings(*argv):
        return settings_from_args(build_parser().parse_args(["crop", "src", "dst", *argv]))

    training = settings("--preset", "training")
    assert (training.template_match, training.second_detector, training.second_pass, training.fallback) == (
        True, True, True, "sibling")
    assert training.fingerprint() == Settings(template_match=True, second_detector=True, second_pass=True,
                                              fallback="sibling").fingerprint()
    assert settings("--preset", "training", "--fallback", "sibling", "--second-pass") == training  # the same values: fine
    assert settings() == settings("--preset", "reference") == Settings()
    result = run_cli("crop", str(tmp_path), str(tmp_path / "out"), "--preset", "training", "--fallback", "centre")
    assert result.returncode == 2
    assert "fallback='centre' contradicts --preset 'training', which sets fallback='sibling'" in result.stderr


def test_a_training_run_of_the_cli_finds_masked_faces_by_template(hard_photos, tmp_path):
    src, out = tmp_path / "src", tmp_path / "out"
    for p in hard_photos:
        (src / p.key).parent.mkdir(parents=True, exist_ok=True)
        (src / p.key).write_bytes(p.data)
    result = run_cli("crop", str(src), str(out), "--preset", "training", "--quiet")
    assert result.returncode == 0, result.stderr
    rows = manifest.loads((out / "manifest.csv").read_text())
    assert sorted(r.source for r in rows if r.method == "template") == [
        "train/images/000001_astronaut/mask1.jpg", "train/images/000001_astronaut/mask3.jpg",
        "train/images/000001_astronaut/mask4.jpg", "train/images/000001_astronaut/mask5.jpg",
        "train/images/000004_hopper/mask2.jpg"]
    assert {r.method for r in rows if r.status == "detected"} == {"mtcnn"}
    assert "rescued by method: template 5, yunet 0, second_pass 0, sibling 0" in result.stdout


def test_the_cli_never_dies_on_one_file_a_device_a_fifo_or_an_oversized_photo(dataset_dir, tmp_path):
    import os

    person = dataset_dir / "train/images/000001_male_White_47"
    (person / "mask_zero.jpg").symlink_to("/dev/zero")
    os.mkfifo(person / "mask_fifo.jpg")
    (person / "mask_big.jpg").write_bytes((person / "normal.jpg").read_bytes() + b"\0" * 1_100_000)
    out = tmp_path / "out"
    result = run_cli("crop", str(dataset_dir), str(out), "--quiet", "--max-photo-megabytes", "1")
    assert result.returncode == 0, result.stderr
    rows = read_manifest(out)
    prefix = "train/images/000001_male_White_47/"
    assert rows[prefix + "mask_zero.jpg"]["reason"] == rows[prefix + "mask_fifo.jpg"]["reason"] == "unreadable"
    assert "not a regular file" in rows[prefix + "mask_zero.jpg"]["error"]
    assert rows[prefix + "mask_big.jpg"]["reason"] == "too_large"
    good = [r for r in rows.values() if r["source"].startswith(prefix) and r["status"] != "error"]
    assert len(good) == 7 and all((out / r["output"]).is_file() for r in good)
