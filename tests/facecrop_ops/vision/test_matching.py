"""Template matching on real faces: a masked face MTCNN misses is found by the sitting's bare
face; another person's face, or a photo without a face, is not taken."""

from __future__ import annotations

import numpy as np
import pytest

from facecrop_ops.config.crop import Settings
from facecrop_ops.config.params import TEMPLATE_MIN_SCORE
from facecrop_ops.vision.detector import Detector
from facecrop_ops.vision.geometry import iou
from facecrop_ops.vision.imaging import decode_rgb
from facecrop_ops.vision.matching import grey, match_face


@pytest.fixture(scope="module")
def sittings(hard_photos):
    """{person: {class: (pixels, true box, MTCNN's first-pass detection)}}."""
    pixels = [decode_rgb(p.data) for p in hard_photos]
    found = Detector(Settings(device="cpu")).detect(pixels)
    out: dict[str, dict] = {}
    for p, rgb, det in zip(hard_photos, pixels, found):
        out.setdefault(p.key.split("/")[2], {})[p.photo_class] = (rgb, p.true_box, det)
    return out


def test_a_masked_face_mtcnn_misses_is_found_from_the_sittings_bare_face(sittings):
    checked = 0
    for person in sittings.values():
        bare, _, bare_found = person["normal"]
        assert bare_found is not None
        for cls, (rgb, truth, det) in person.items():
            if det is not None:
                continue
            match = match_face(grey(rgb), bare, bare_found.box, bare_found.box)
            assert match is not None and match.score >= TEMPLATE_MIN_SCORE, (cls, match)
            assert iou(match.box, truth) >= 0.5, (cls, match, truth)
            checked += 1
    assert checked == 5  # four of the astronaut's masked photos and one of Grace Hopper's


def test_another_persons_face_is_not_taken(sittings):
    astronaut, hopper = sittings["000001_astronaut"], sittings["000004_hopper"]
    for theirs, other in ((astronaut, hopper), (hopper, astronaut)):
        bare, _, bare_found = other["normal"]
        _, _, here = theirs["normal"]
        for cls, (rgb, _, _) in theirs.items():
            # The other person's face, searched where this person's face is.
            match = match_face(grey(rgb), bare, bare_found.box, here.box)
            assert match is None or match.score < TEMPLATE_MIN_SCORE, (cls, match)


def test_a_photo_without_a_face_is_not_taken(sittings):
    bare, _, bare_found = sittings["000001_astronaut"]["normal"]
    rng = np.random.default_rng(0)
    wall = np.clip(rng.normal(120, 20, bare.shape), 0, 255).astype(np.uint8)
    gradient = np.broadcast_to(np.linspace(40, 220, bare.shape[0])[:, None, None], bare.shape).astype(np.uint8)
    for empty in (wall, gradient):
        match = match_face(grey(empty), bare, bare_found.box, bare_found.box)
        assert match is None or match.score < TEMPLATE_MIN_SCORE


def test_a_sitting_at_the_edge_is_matched_with_the_part_of_the_face_inside_the_photo(sittings):
    person = sittings["000001_astronaut"]
    bare, _, bare_found = person["normal"]
    shift = int(bare_found.box[0] + 0.3 * (bare_found.box[2] - bare_found.box[0]))  # 30 % of the face off the left edge

    def moved(rgb: np.ndarray) -> np.ndarray:
        out = np.zeros_like(rgb)
        out[:, : rgb.shape[1] - shift] = rgb[:, shift:]
        return out

    def left(box: tuple[float, ...]) -> tuple[float, ...]:
        return (box[0] - shift, box[1], box[2] - shift, box[3])

    missed = [(rgb, truth) for rgb, truth, det in person.values() if det is None]
    assert missed
    for rgb, truth in missed:
        match = match_face(grey(moved(rgb)), moved(bare), left(bare_found.box), left(bare_found.box))
        assert match is not None and match.score >= TEMPLATE_MIN_SCORE
        assert iou(match.box, left(truth)) >= 0.5
