import numpy as np
import pytest

from facecrop_dev import samples
from facecrop_ops.config.crop import Settings
from facecrop_ops.dataset.naming import CLASSES
from facecrop_ops.vision.detector import Detector


@pytest.fixture(scope="module")
def photos():
    return [samples.portrait(100 + i, mask=samples.class_mask(CLASSES[i % 7])).rgb for i in range(14)]


@pytest.fixture(scope="module")
def detector():
    return Detector(Settings(device="cpu"))


def int_boxes(found):
    return [None if f is None else tuple(int(v) for v in f.box) for f in found]


def test_batched_detection_equals_one_photo_at_a_time(detector, photos):
    batched = detector.detect(photos)
    alone = [detector.detect([p])[0] for p in photos]
    assert int_boxes(batched) == int_boxes(alone)
    for b, a in zip(batched, alone):
        if b is not None:
            assert np.allclose(b.box, a.box, atol=1e-3) and abs(b.prob - a.prob) < 1e-4
    assert any(f is None for f in batched) and any(f is not None for f in batched)


def test_photos_of_different_sizes_are_grouped_and_answered_in_order(detector, photos):
    small = [samples.portrait(200 + i, size=(300, 400), scale=1.4).rgb for i in range(3)]
    mixed = [photos[0], small[0], photos[1], small[1], small[2], photos[2]]
    together = detector.detect(mixed)
    assert int_boxes(together) == int_boxes([detector.detect([p])[0] for p in mixed])


def test_facenet_engine_gives_the_same_crop_boxes(detector, photos):
    facenet = Detector(Settings(device="cpu", engine="facenet"))
    assert int_boxes(facenet.detect(photos)) == int_boxes(detector.detect(photos))


def test_a_photo_without_a_face_gives_none(detector):
    blank = np.full((512, 384, 3), 128, np.uint8)
    assert detector.detect([blank]) == [None]


def two_faces():
    """A big masked face on the left (less certain), a smaller bare one on the right."""
    big = samples.portrait(0, scale=2.2, shift=(-70, 0), flip=False, size=(640, 512), mask="incorrect").rgb
    small = samples.portrait(6, scale=1.3, shift=(0, 0), flip=False, size=(260, 512)).rgb
    canvas = big.copy()
    canvas[:, 380:] = small[:, : 640 - 380]
    return canvas


@pytest.mark.parametrize("engine", ["fast", "facenet"])
def test_largest_face_first_by_default_most_probable_on_request(engine):
    img = two_faces()
    largest = Detector(Settings(device="cpu", engine=engine)).detect([img])[0]
    probable = Detector(Settings(device="cpu", engine=engine, select_largest=False)).detect([img])[0]
    assert largest.faces >= 2 and probable.faces == largest.faces
    area = lambda b: (b[2] - b[0]) * (b[3] - b[1])  # noqa: E731
    assert largest.box[0] < 380 and probable.box[0] > 380
    assert area(largest.box) > area(probable.box)
    assert probable.prob > largest.prob
