"""Crop boxes: pure integer arithmetic, no image library, so every rule is easy to test."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import NamedTuple


class Box(NamedTuple):
    """Half-open pixel box: columns x1..x2-1, rows y1..y2-1 (numpy's img[y1:y2, x1:x2])."""

    x1: int
    y1: int
    x2: int
    y2: int

    @property
    def width(self) -> int:
        return self.x2 - self.x1

    @property
    def height(self) -> int:
        return self.y2 - self.y1

    @property
    def empty(self) -> bool:
        return self.width <= 0 or self.height <= 0


def padded_box(
    face: Sequence[float],
    width: int,
    height: int,
    margins: tuple[int, int, int, int] = (30, 30, 60, 30),
) -> Box:
    """The reference's crop around a detected face: truncate the detector's float box with
    `int()`, grow it by the left/right/top/bottom margins and clamp it to the photo.

    The notebook clamped to a hard-coded 384 x 512; we clamp to the photo's real size, and
    also clamp the far edges at 0 so a box off the photo gives an empty box, not a numpy
    slice that counts from the end.
    """
    left, right, top, bottom = margins
    x1, y1, x2, y2 = (int(v) for v in face)
    return Box(
        min(width, max(0, x1 - left)),
        min(height, max(0, y1 - top)),
        max(0, min(width, x2 + right)),
        max(0, min(height, y2 + bottom)),
    )


def fallback_box(width: int, height: int, size: tuple[int, int] = (256, 340)) -> Box:
    """The centre crop used when no face is found: size (W, H) centred in the photo, rounded
    down to whole pixels (x 64..320, y 86..426 on a 384 x 512 photo), cut to the photo when
    the photo is smaller."""
    crop_w, crop_h = min(size[0], width), min(size[1], height)
    x1, y1 = (width - crop_w) // 2, (height - crop_h) // 2
    return Box(x1, y1, x1 + crop_w, y1 + crop_h)


FaceBox = tuple[float, float, float, float]  # a detector's float box, x1, y1, x2, y2


def iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two x1, y1, x2, y2 boxes (0 when either is empty)."""
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    inter = max(0.0, w) * max(0.0, h)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def scale_box(box: Sequence[float], from_size: tuple[int, int], to_size: tuple[int, int]) -> FaceBox:
    """A box on a W x H photo, placed on a photo of another size (same framing)."""
    sx, sy = to_size[0] / from_size[0], to_size[1] / from_size[1]
    return (box[0] * sx, box[1] * sy, box[2] * sx, box[3] * sy)


def median_box(boxes: Sequence[Sequence[float]]) -> FaceBox:
    """Each coordinate's median: one stray box does not move it."""
    x1, y1, x2, y2 = (statistics.median(b[i] for b in boxes) for i in range(4))
    return (x1, y1, x2, y2)
