"""Where MTCNN missed a face and no sitting can help, a second detector's answer, judged and
put into MTCNN's geometry (pure: numbers in, numbers out; `vision.yunet` runs the detector).

A flat folder (eval/images/<hash>.jpg) has no sitting, so template matching, the guarded second
pass and the sibling box cannot help, and a masked face MTCNN misses got the centre guess.
YuNet (OpenCV Zoo's face detector, MIT; it runs in the OpenCV we ship) was trained on faces as
they come, masks included, and finds nearly every masked face MTCNN misses. It is asked only
about MTCNN's misses, so a face MTCNN found is never changed. Its best face is taken only when
it passes every rule below; its box is then put into MTCNN's geometry, since the crop's margins
were tuned on MTCNN's boxes and a classifier must not learn "this crop came from the other
detector".

Every constant was chosen on calibration sittings (facecrop_dev.hard_sittings 1000..1479, laid
out flat) and on 228 face-free photos, never on the benchmark's sittings (0..63):
`benchmarks/bench_quality.py --flat` measures the result.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from facecrop_ops.vision.geometry import FaceBox

Point = tuple[float, float]


@dataclass(frozen=True)
class YuNetFace:
    """One face YuNet reports: its box, its five landmarks (in YuNet's order: the eye on the
    photo's left, the eye on its right, the nose tip, the mouth corner on the left, on the
    right) and its score (0..1)."""

    box: FaceBox
    landmarks: tuple[Point, Point, Point, Point, Point]
    score: float

    @classmethod
    def from_row(cls, row: Sequence[float]) -> YuNetFace:
        """From a row of `cv2.FaceDetectorYN.detect`: x, y, w, h, 5 x (x, y), score."""
        x, y, w, h = (float(v) for v in row[:4])
        marks = tuple((float(row[4 + 2 * i]), float(row[5 + 2 * i])) for i in range(5))
        return cls((x, y, x + w, y + h), marks, float(row[14]))  # type: ignore[arg-type]


@dataclass(frozen=True)
class BoxMapping:
    """MTCNN's box from YuNet's: each edge at the YuNet box's centre plus a fraction of its
    width (x) or height (y). Least squares on calibration photos where YuNet found the face,
    the target being the true box (MTCNN's box on the same photo rendered without the mask).
    MTCNN's box is 0.95 x YuNet's width and 0.94 x its height, 2 % of the width to the left
    and 1.5 % of the height up: a near-identity map, so it transfers across faces (fitted on
    one of the two real faces, it serves the other within 0.01 crop IoU)."""

    left: float = -0.494
    top: float = -0.486
    right: float = 0.454
    bottom: float = 0.456


MAPPING = BoxMapping()


def mtcnn_like_box(face: YuNetFace, mapping: BoxMapping = MAPPING) -> FaceBox:
    """YuNet's box in MTCNN's geometry, ready for `geometry.padded_box` with the usual margins.
    It may reach past the photo's edge, as MTCNN's boxes do; padding clamps it."""
    x1, y1, x2, y2 = face.box
    cx, cy, w, h = (x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1
    return (cx + mapping.left * w, cy + mapping.top * h, cx + mapping.right * w, cy + mapping.bottom * h)


@dataclass(frozen=True)
class Acceptance:
    """When YuNet's best face is taken. The score bar is the one that matters: on calibration
    YuNet's best face was on the true face in every one of 3,360 photos, and every face-free
    photo's best "face" but a hand-drawn smiley scored below 0.5 (coins 0.41, a cat 0.31).
    The geometric bounds lie just outside what the right faces spanned on calibration (they
    refuse none of its 3,360 best faces) and refuse what a face cannot be: 4,101 of the 7,209
    wrong candidates there and on face-free photos (7 of the 44 scoring 0.5 or more: chins,
    collars, gravel, drawn faces). On these photos they change no decision (the best face
    was right wherever it scored 0.5); they are the guard for photos unlike them.
    Widths are fractions of the photo's shorter side, so the rules hold at any photo size."""

    min_score: float = 0.5  # calibration misses kept: 556 of 563
    min_width: float = 0.09  # right faces from 0.13 (50 px of 384); wrong ones from 7 px
    max_width: float = 0.9  # right faces up to 0.54
    aspect: tuple[float, float] = (0.85, 2.4)  # height / width; right 0.95..2.18 (a mask makes the box tall)
    eye_distance: tuple[float, float] = (0.12, 0.7)  # / box width; right 0.15..0.61
    nose_below_eyes: tuple[float, float] = (0.25, 2.2)  # / eye distance, down the face; right 0.34..2.0
    mouth_below_nose: tuple[float, float] = (0.1, 1.4)  # / eye distance; right 0.20..1.17
    mouth_width: tuple[float, float] = (0.4, 1.2)  # / eye distance; right 0.52..1.02
    eyes_height: tuple[float, float] = (0.15, 0.6)  # eyes' midpoint in the box, from its top; right 0.24..0.50
    eyes_across: tuple[float, float] = (0.15, 0.85)  # from its left; right 0.30..0.80


RULES = Acceptance()


def face_shape(face: YuNetFace) -> dict[str, float]:
    """The measures the rules judge, in the face's own frame (x along the eye line, y down
    the face, unit the eye distance), so a tilted head measures as an upright one."""
    x1, y1, x2, y2 = face.box
    w, h = x2 - x1, y2 - y1
    (ax, ay), (bx, by), (nx, ny), (lx, ly), (rx, ry) = face.landmarks
    d = math.hypot(bx - ax, by - ay)
    ux, uy = ((bx - ax) / d, (by - ay) / d) if d > 0 else (1.0, 0.0)
    vx, vy = -uy, ux  # down the face
    ex, ey = (ax + bx) / 2, (ay + by) / 2
    mx, my = (lx + rx) / 2, (ly + ry) / 2
    unit = d if d > 0 else 1e-6
    return {
        "width": w,
        "aspect": h / w if w > 0 else math.inf,
        "eye_distance": d / w if w > 0 else math.inf,
        "nose_below_eyes": ((nx - ex) * vx + (ny - ey) * vy) / unit,
        "mouth_below_nose": ((mx - nx) * vx + (my - ny) * vy) / unit,
        "mouth_width": math.hypot(rx - lx, ry - ly) / unit,
        "eyes_height": (ey - y1) / h if h > 0 else math.inf,
        "eyes_across": (ex - x1) / w if w > 0 else math.inf,
    }


def refusal(face: YuNetFace, size: tuple[int, int], rules: Acceptance = RULES) -> str | None:
    """Why this face is not taken on a photo of `size` (W, H), or None when it is."""
    if face.score < rules.min_score:
        return f"score {face.score:.2f} < {rules.min_score}"
    shape = face_shape(face)
    side = min(size)
    if not rules.min_width * side <= shape["width"] <= rules.max_width * side:
        return f"width {shape['width']:.0f} px outside {rules.min_width}..{rules.max_width} x {side} px"
    for name in ("aspect", "eye_distance", "nose_below_eyes", "mouth_below_nose", "mouth_width",
                 "eyes_height", "eyes_across"):
        low, high = getattr(rules, name)
        if not low <= shape[name] <= high:
            return f"{name} {shape[name]:.2f} outside {low}..{high}"
    return None


@dataclass(frozen=True)
class Rescue:
    """The face box a missed photo's crop is built on (MTCNN's geometry) and YuNet's score."""

    box: FaceBox
    score: float


def rescue_box(faces: Sequence[YuNetFace], size: tuple[int, int], rules: Acceptance = RULES,
               mapping: BoxMapping = MAPPING) -> Rescue | None:
    """YuNet's best-scoring face, mapped, when it passes every rule; else None (the centre
    box, or the next rescue). Only the best face is judged: a lesser one is never taken in
    its place (on calibration the best was the true face every time, while the lesser ones
    scoring 0.5 or more were a chin, a collar, or the masked half of the face)."""
    if not faces:
        return None
    best = max(faces, key=lambda f: f.score)
    if refusal(best, size, rules) is not None:
        return None
    return Rescue(mtcnn_like_box(best, mapping), best.score)
