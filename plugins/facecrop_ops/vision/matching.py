"""Find a masked face by the sitting's own face: template matching of the upper face (OpenCV).

MTCNN misses a masked face because the mask hides what its last network needs (nose, mouth
corners), but the eyes, brows and hair are still there, and the same person's `normal` (or
`incorrect_mask`) photo of the same sitting shows them, found by MTCNN. This module carries
that photo's upper face (the top part of its face box) onto the missed photo: it searches a
window around where that photo shows the face, over a few scales and rotations (people move
between photos of a sitting), with normalised cross-correlation (`cv2.matchTemplate`,
TM_CCOEFF_NORMED: blind to changes of exposure and contrast), and returns the best placement
of the reference box and its score. Whether a placement is accepted is decided from the
score and the boxes alone, in `vision.rescue`.

The search runs on greyscale copies scaled so that the face is about WORK_WIDTH pixels wide:
a coarse grid of scales and angles, then a finer one around the best: a few milliseconds a
template on one core, less than a detection, and a lower resolution is also less sensitive to
a defocused or noisy photo.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from facecrop_ops.vision.geometry import FaceBox

# Chosen on hard sittings (facecrop_dev.hard_sittings 1000-1063) while building this: without
# rotations four times as many placements on found photos were wrong; this grid found as many
# faces as one twice as fine (64 px, 7 scales, 5 angles) in a third of the time.
# The face's width in the working copies (px).
WORK_WIDTH = 48
# The top share of the reference box that is matched: eyes, brows and forehead. Masks worn
# properly start lower; taking the hair above the box too found fewer faces.
UPPER = 0.45
# How far from the siblings' box the face may be, in face widths (sitters shift by a third of
# a face width between photos, more when they lean).
WINDOW = 0.75
COARSE_SCALES = tuple(1.12 ** k for k in range(-2, 3))  # 0.80 .. 1.25 of the reference face
COARSE_ANGLES = (-10.0, 0.0, 10.0)  # degrees
FINE_SCALES = (1 / 1.035, 1.0, 1.035)  # around the best coarse one
FINE_ANGLES = (-3.0, 0.0, 3.0)


@dataclass(frozen=True)
class Match:
    """The reference box placed on the photo, the score of its upper part there (-1..1), and
    the scale and rotation (degrees) relative to the reference photo."""

    box: FaceBox
    score: float
    scale: float
    angle: float


def grey(rgb: np.ndarray) -> np.ndarray:
    """The single channel matching works on."""
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)


def match_face(
    photo: np.ndarray,
    reference: np.ndarray,
    reference_box: FaceBox,
    expected: FaceBox,
    *,
    upper: float = UPPER,
    window: float = WINDOW,
) -> Match | None:
    """The best placement of `reference_box`'s upper face (on the `reference` photo, RGB or
    grey) on `photo`, searched within `window` face widths of the `expected` box (where the
    siblings put the face on this photo). None when the box is too small or off the photo."""
    ref_grey = reference if reference.ndim == 2 else grey(reference)
    photo_grey = photo if photo.ndim == 2 else grey(photo)
    width = reference_box[2] - reference_box[0]
    if width < 8 or reference_box[3] - reference_box[1] < 8:
        return None
    # Only the regions the search can reach are scaled: around the reference face (rotated
    # templates reach a little past its box) and around the expected box (the window, plus the
    # largest template). Cut at the photo's own edges only, so what lies off the photo stays off.
    ref_part, (rx, ry) = _around(ref_grey, reference_box, 0.5)
    photo_part, (px, py) = _around(photo_grey, expected, window + 1.5 * max(1.0, width / max(1.0, expected[2] - expected[0])))
    # Work at a resolution where the reference face is WORK_WIDTH wide (never enlarge).
    f = min(1.0, WORK_WIDTH / width)
    ref_small = _resize(ref_part, f)
    photo_small = _resize(photo_part, f)
    ref_box = ((reference_box[0] - rx) * f, (reference_box[1] - ry) * f, (reference_box[2] - rx) * f, (reference_box[3] - ry) * f)
    exp_box = ((expected[0] - px) * f, (expected[1] - py) * f, (expected[2] - px) * f, (expected[3] - py) * f)
    best = _search(photo_small, ref_small, ref_box, exp_box, upper, window, COARSE_SCALES, COARSE_ANGLES, None)
    if best is None:
        return None
    fine_scales = tuple(best.scale * s for s in FINE_SCALES)
    fine_angles = tuple(best.angle + a for a in FINE_ANGLES)
    best = _search(photo_small, ref_small, ref_box, exp_box, upper, window, fine_scales, fine_angles, best) or best
    x1, y1, x2, y2 = best.box
    return Match((x1 / f + px, y1 / f + py, x2 / f + px, y2 / f + py), best.score, best.scale, best.angle)


def _around(img: np.ndarray, box: FaceBox, margin: float) -> tuple[np.ndarray, tuple[int, int]]:
    """The part of `img` within `margin` box widths/heights of `box`, and its top-left."""
    w, h = box[2] - box[0], box[3] - box[1]
    x1, y1 = max(0, int(box[0] - margin * w)), max(0, int(box[1] - margin * h))
    x2, y2 = min(img.shape[1], int(math.ceil(box[2] + margin * w))), min(img.shape[0], int(math.ceil(box[3] + margin * h)))
    if x2 <= x1 or y2 <= y1:
        return img, (0, 0)
    return img[y1:y2, x1:x2], (x1, y1)


def _resize(img: np.ndarray, f: float) -> np.ndarray:
    if f >= 1.0:
        return img
    return cv2.resize(img, None, fx=f, fy=f, interpolation=cv2.INTER_AREA)


def _search(
    photo: np.ndarray,
    ref: np.ndarray,
    ref_box: tuple[float, ...],
    expected: tuple[float, ...],
    upper: float,
    window: float,
    scales: tuple[float, ...],
    angles: tuple[float, ...],
    best: Match | None,
) -> Match | None:
    x1, y1, x2, y2 = ref_box
    w, h = x2 - x1, y2 - y1
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    ex1, ey1, ex2, ey2 = expected
    reach = window * (ex2 - ex1)
    ph, pw = photo.shape
    for s in scales:
        tw, th = int(round(s * w)), int(round(s * h * upper))
        if tw < 6 or th < 4:
            continue
        # The expected top-left of the placed box: the expected box's centre, this box's size.
        gx = (ex1 + ex2) / 2 - s * w / 2
        gy = (ey1 + ey2) / 2 - s * h / 2
        sx1, sy1 = max(0, int(math.floor(gx - reach))), max(0, int(math.floor(gy - reach)))
        sx2, sy2 = min(pw, int(math.ceil(gx + reach)) + tw), min(ph, int(math.ceil(gy + reach)) + th)
        for a in angles:
            templ, (ox, oy) = _template(ref, cx, cy, s, a, tw, th, s * h)
            if templ is None or sx2 - sx1 < templ.shape[1] or sy2 - sy1 < templ.shape[0]:
                continue
            result = cv2.matchTemplate(photo[sy1:sy2, sx1:sx2], templ, cv2.TM_CCOEFF_NORMED)
            _, score, _, (lx, ly) = cv2.minMaxLoc(result)
            if best is None or score > best.score:
                bx, by = sx1 + lx - ox, sy1 + ly - oy
                best = Match((bx, by, bx + s * w, by + s * h), float(score), s, a)
    return best


def _template(ref: np.ndarray, cx: float, cy: float, s: float, angle: float, tw: int, th: int,
              box_h: float) -> tuple[np.ndarray | None, tuple[int, int]]:
    """The reference's upper face rotated by `angle` and scaled by `s` about the face's centre,
    cut as a tw x th template whose (0, 0) is the placed box's top-left corner; cut down to
    the part inside the reference photo, with that part's offset."""
    m = cv2.getRotationMatrix2D((cx, cy), angle, s)
    m[0, 2] += tw / 2 - cx
    m[1, 2] += box_h / 2 - cy
    templ = cv2.warpAffine(ref, m, (tw, th), flags=cv2.INTER_LINEAR, borderValue=0)
    back = cv2.invertAffineTransform(m)
    corners = np.array([[0, 0, 1], [tw, 0, 1], [0, th, 1], [tw, th, 1]], float) @ back.T
    if corners.min() >= 0 and corners[:, 0].max() <= ref.shape[1] - 1 and corners[:, 1].max() <= ref.shape[0] - 1:
        return (templ, (0, 0)) if float(templ.std()) >= 1.0 else (None, (0, 0))
    inside = cv2.warpAffine(np.full(ref.shape, 255, np.uint8), m, (tw, th), flags=cv2.INTER_NEAREST, borderValue=0)
    rows = np.flatnonzero(inside.max(axis=1) == 255)
    cols = np.flatnonzero(inside[rows].min(axis=0) == 255) if len(rows) else rows
    rows = np.flatnonzero(inside[:, cols].min(axis=1) == 255) if len(cols) else cols
    if len(cols) < 0.6 * tw or len(rows) < 0.6 * th:  # most of the upper face lies off the photo
        return None, (0, 0)
    c0, c1, r0, r1 = cols[0], cols[-1] + 1, rows[0], rows[-1] + 1
    part = templ[r0:r1, c0:c1]
    if float(part.std()) < 1.0:  # a flat patch correlates with nothing
        return None, (0, 0)
    return np.ascontiguousarray(part), (int(c0), int(r0))
