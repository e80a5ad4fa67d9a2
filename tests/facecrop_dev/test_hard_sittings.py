"""Hard sittings: real public-domain faces, seeded, every photo with its true face box."""

from __future__ import annotations

from facecrop_dev import hard_sittings
from facecrop_ops.dataset.naming import CLASSES, folder_of, photo_class
from facecrop_ops.vision.geometry import iou
from facecrop_ops.vision.imaging import decode_rgb


def test_a_sitting_is_seven_classes_of_one_person_with_true_boxes(hard_photos):
    astronaut = [p for p in hard_photos if folder_of(p.key) == "train/images/000001_astronaut"]
    assert [photo_class(p.key) for p in astronaut] == list(CLASSES) == [p.photo_class for p in astronaut]
    assert {p.source for p in astronaut} == {"astronaut"}
    for p in astronaut:
        assert decode_rgb(p.data).shape == (hard_sittings.HEIGHT, hard_sittings.WIDTH, 3)
        x1, y1, x2, y2 = p.true_box
        assert 60 * 0.8 < x2 - x1 < 150 * 1.3 and y2 > y1
        assert (p.style is None) == (p.photo_class == "normal")
        expected = {"normal": (None,), "incorrect_mask": ("below_nose", "chin")}.get(p.photo_class, ("proper",))
        assert p.worn in expected
    assert {p.source for p in hard_photos} == {"astronaut", "hopper"}


def test_sitters_move_between_photos(hard_photos):
    astronaut = [p for p in hard_photos if folder_of(p.key) == "train/images/000001_astronaut"]
    boxes = [p.true_box for p in astronaut]
    assert min(iou(a, b) for a in boxes for b in boxes) < 0.8  # not one framing give or take a pixel
    assert max(p.angle for p in astronaut) - min(p.angle for p in astronaut) > 5


def test_the_same_index_gives_the_same_bytes(hard_photos):
    again = hard_sittings.sitting(3)
    assert [(p.key, p.data, p.true_box) for p in again] == [(p.key, p.data, p.true_box) for p in hard_photos[7:]]
