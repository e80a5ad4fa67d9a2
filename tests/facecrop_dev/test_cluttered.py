"""The speed benchmark's harder photos: seeded, in the dataset's layout, the size the loop clamps to."""

import cv2
import numpy as np

from facecrop_dev import cluttered
from facecrop_ops.dataset.naming import CLASSES


def test_photos_are_seeded_jpegs_of_384_by_512_seven_classes_a_person():
    photos = [cluttered.photo(i) for i in range(7)]
    assert photos[3] == cluttered.photo(3)  # the same bytes every time
    assert [key.rsplit("/", 1)[1] for key, _ in photos] == [f"{c}.jpg" for c in CLASSES]
    assert all(key.startswith("train/images/000000_") for key, _ in photos)
    img = cv2.imdecode(np.frombuffer(photos[0][1], np.uint8), cv2.IMREAD_COLOR)
    assert img.shape == (512, 384, 3)
    assert photos[0][1] != cluttered.photo(14)[1]  # another draw, another room
