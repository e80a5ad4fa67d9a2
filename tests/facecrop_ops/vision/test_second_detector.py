"""The second detector's rules (pure), and YuNet itself on photos MTCNN missed."""

from __future__ import annotations

import pytest

from facecrop_ops.vision.second_detector import (
    MAPPING,
    YuNetFace,
    face_shape,
    mtcnn_like_box,
    refusal,
    rescue_box,
)

# An upright face 100 px wide, 120 tall at (100, 100): eyes at a third, 44 px apart.
FACE = YuNetFace((100.0, 100.0, 200.0, 220.0),
                 ((128.0, 145.0), (172.0, 145.0), (150.0, 170.0), (133.0, 190.0), (167.0, 190.0)), 0.8)
SIZE = (384, 512)


def test_from_row_turns_width_height_into_corners():
    row = [10, 20, 30, 40, *range(10), 0.7]
    face = YuNetFace.from_row(row)
    assert face.box == (10, 20, 40, 60)
    assert face.landmarks[0] == (0, 1) and face.landmarks[4] == (8, 9)
    assert face.score == pytest.approx(0.7)


def test_mapping_is_a_near_identity_in_mtcnn_geometry():
    x1, y1, x2, y2 = mtcnn_like_box(FACE)
    assert x1 == pytest.approx(150 + MAPPING.left * 100)
    assert y2 == pytest.approx(160 + MAPPING.bottom * 120)
    assert 0.9 < (x2 - x1) / 100 < 1.0 and 0.9 < (y2 - y1) / 120 < 1.0


def test_a_plain_face_is_taken():
    assert refusal(FACE, SIZE) is None
    got = rescue_box([FACE], SIZE)
    assert got is not None and got.box == mtcnn_like_box(FACE) and got.score == FACE.score


def test_shape_is_measured_in_the_face_frame_so_a_tilted_face_measures_as_upright():
    import math

    a = math.radians(20)
    cx, cy = 150, 160

    def turn(p):
        x, y = p[0] - cx, p[1] - cy
        return (cx + x * math.cos(a) - y * math.sin(a), cy + x * math.sin(a) + y * math.cos(a))

    tilted = YuNetFace(FACE.box, tuple(turn(p) for p in FACE.landmarks), FACE.score)
    for key in ("nose_below_eyes", "mouth_below_nose", "mouth_width", "eye_distance"):
        assert face_shape(tilted)[key] == pytest.approx(face_shape(FACE)[key], rel=1e-6)


@pytest.mark.parametrize(("change", "why"), [
    (dict(score=0.49), "score"),
    (dict(box=(100.0, 100.0, 130.0, 136.0)), "width"),  # 30 px on a 384 px photo
    (dict(box=(100.0, 100.0, 200.0, 170.0)), "aspect"),  # wider than tall
    (dict(landmarks=((128.0, 170.0), (172.0, 170.0), (150.0, 145.0), (133.0, 190.0), (167.0, 190.0))), "nose_below_eyes"),
    (dict(landmarks=((128.0, 145.0), (172.0, 145.0), (150.0, 170.0), (133.0, 168.0), (167.0, 168.0))), "mouth_below_nose"),
])
def test_what_a_face_cannot_be_is_refused(change, why):
    from dataclasses import replace

    face = replace(FACE, **change)
    assert why in (refusal(face, SIZE) or "")
    assert rescue_box([face], SIZE) is None


def test_only_the_best_face_is_judged_a_lesser_one_never_replaces_it():
    from dataclasses import replace

    refused_best = replace(FACE, score=0.9, box=(100.0, 100.0, 200.0, 170.0))  # aspect 0.7
    lesser = replace(FACE, score=0.6)
    assert rescue_box([lesser, refused_best], SIZE) is None
    assert rescue_box([], SIZE) is None


def test_rules_scale_with_the_photo():
    assert refusal(FACE, (384, 512)) is None
    assert "width" in refusal(FACE, (3000, 4000))  # 100 px is a speck on a 12 MP photo


def test_yunet_finds_the_masked_faces_mtcnn_missed_in_a_hard_sitting(hard_photos):
    from facecrop_ops.vision.geometry import iou
    from facecrop_ops.vision.imaging import decode_rgb
    from facecrop_ops.vision.yunet import YuNet

    yunet = YuNet()
    for photo in (p for p in hard_photos if p.key.endswith(("000001_astronaut/mask5.jpg", "000004_hopper/mask2.jpg"))):
        rgb = decode_rgb(photo.data)
        got = rescue_box(yunet.faces(rgb), (rgb.shape[1], rgb.shape[0]))
        assert got is not None and iou(got.box, photo.true_box) > 0.6


def test_the_model_ships_in_the_package_and_a_file_that_is_not_the_pinned_one_is_refused(monkeypatch):
    from facecrop_ops.vision import yunet

    assert len(yunet.model_bytes()) == 232_589
    monkeypatch.setattr(yunet, "MODEL_SHA256", "0" * 64)
    with pytest.raises(RuntimeError, match="reinstall facecrop-ops"):
        yunet.YuNet()


def test_flat_photos_mtcnn_missed_get_the_second_detectors_face_and_detected_ones_never_change(hard_photos):
    import hashlib

    from facecrop_ops.config.crop import Settings
    from facecrop_ops.vision.geometry import iou, padded_box
    from facecrop_ops.vision.processor import Photo, crop_photos

    flat = [(f"eval/images/{hashlib.sha1(p.data).hexdigest()}.jpg", p) for p in hard_photos]
    photos = [Photo(key, key.replace("/images/", "/faces/"), data=p.data) for key, p in flat]
    truth = {key: p.true_box for key, p in flat}
    reference = {r.row.source: r for r in crop_photos(photos, Settings(device="cpu", workers=1))}
    second = {r.row.source: r for r in crop_photos(photos, Settings(device="cpu", workers=1, second_detector=True))}
    missed = [k for k, r in reference.items() if r.row.status == "fallback"]
    assert len(missed) == 5 and all(second[k].row.method == "yunet" and second[k].row.status == "fallback" for k in missed)
    crops = [iou(second[k].row.crop, padded_box(truth[k], 384, 512)) for k in missed]
    guesses = [iou(reference[k].row.crop, padded_box(truth[k], 384, 512)) for k in missed]
    assert min(crops) > 0.75 and sum(crops) / len(crops) > 0.85 > max(guesses)  # one face is cut by the photo's edge
    assert all((second[k].row, second[k].face) == (r.row, r.face) for k, r in reference.items() if k not in missed)
