"""Better crops where MTCNN misses, decided from boxes and scores alone (pure).

A person folder holds one sitting: seven photos of one person, so a face MTCNN missed (a
mask hides half of it) is nearly where the same person's other photos show it. These rules
turn the detected siblings into a reference face box, say whose faces are matched onto a
missed photo (`vision.matching` does the matching) and which placement is taken, judge a
relaxed second detection against the reference box, and size the centre box from a run's
detections.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from facecrop_ops.dataset.naming import REFERENCE_CLASSES
from facecrop_ops.vision.geometry import Box, FaceBox, iou, median_box, scale_box

# Whose box a missed photo borrows first: a bare face, then one with a mask below the nose.
SIBLING_PREFERENCE = REFERENCE_CLASSES
# The reference centre box is 1.2 x the mean padded crop of the original data's detections.
AUTO_FALLBACK_FACTOR = 1.2
# Whose upper face is matched onto a missed photo: the bare face, then the one whose mask is
# below the nose (its eyes, brows and hair are bare too). A masked photo's is not: its mask may
# reach up into the part matched.
TEMPLATE_CLASSES = SIBLING_PREFERENCE
# Two templates that put the face at the same place (boxes overlapping by AGREEING_MIN_IOU)
# are two witnesses: each needs less. Chosen like the single threshold (config.params
# TEMPLATE_MIN_SCORE), on found photos of the calibration sittings: above every agreeing pair
# whose placement missed the true face.
AGREEING_MIN_IOU = 0.5
AGREEING_MIN_SCORE = 0.83


@dataclass(frozen=True)
class Found:
    """A sibling's first-pass detection: its class, its face box and its photo's W x H."""

    photo_class: str
    box: FaceBox
    size: tuple[int, int]


# A reference photo (normal, incorrect_mask) whose face box differs from the median of its
# sitting's other detections by more than this, in size or in place, is taken for another
# person or a stray shot, and the rescues lean on the others. Chosen above what genuine
# reference photos showed on the calibration sittings (hard_sittings 1000-1479, where people
# move and lean between photos): size ratios up to 1.99, shifts up to 0.87 face widths.
REFERENCE_MAX_SCALE = 2.2
REFERENCE_MAX_SHIFT = 1.1  # the distance between the boxes' centres, in face widths


def trusted_siblings(siblings: Sequence[Found]) -> tuple[list[Found], list[str]]:
    """The detected siblings a rescue may lean on, and the classes of reference photos left out
    because their box disagrees with at least two other detections of the sitting."""
    kept, rejected = [], []
    for f in siblings:
        others = [o for o in siblings if o is not f]
        if f.photo_class in SIBLING_PREFERENCE and len(others) >= 2 and not _agrees(f, others):
            rejected.append(f.photo_class)
        else:
            kept.append(f)
    return kept, rejected


def _agrees(found: Found, others: Sequence[Found]) -> bool:
    median = median_box([scale_box(o.box, o.size, found.size) for o in others])
    width, median_width = found.box[2] - found.box[0], median[2] - median[0]
    if min(width, median_width) <= 0:
        return False
    shift = math.hypot((found.box[0] + found.box[2] - median[0] - median[2]) / 2,
                       (found.box[1] + found.box[3] - median[1] - median[3]) / 2) / median_width
    return max(width, median_width) / min(width, median_width) <= REFERENCE_MAX_SCALE and shift <= REFERENCE_MAX_SHIFT


def reference_box(siblings: Sequence[Found], size: tuple[int, int]) -> tuple[FaceBox, str] | None:
    """Where the siblings put the face on a photo of `size` (W, H), and whose box it is: the
    `normal` photo's box, else the `incorrect_mask` one's, else (`median`) the median of every
    detected sibling's; each scaled from its photo's size. None when no sibling was detected."""
    for cls in SIBLING_PREFERENCE:
        chosen = [f for f in siblings if f.photo_class == cls]
        if chosen:
            return median_box([scale_box(f.box, f.size, size) for f in chosen]), cls
    if not siblings:
        return None
    return median_box([scale_box(f.box, f.size, size) for f in siblings]), "median"


@dataclass(frozen=True)
class Placement:
    """Where one sibling's upper face matched best on a missed photo, and how well (-1..1)."""

    photo_class: str
    box: FaceBox
    score: float


def template_sources(siblings: Sequence[Found]) -> list[Found]:
    """The detected siblings whose faces are matched, in the order tried: at most one each of
    TEMPLATE_CLASSES."""
    out = []
    for cls in TEMPLATE_CLASSES:
        out.extend([f for f in siblings if f.photo_class == cls][:1])
    return out


def accepted_placement(placements: Sequence[Placement], min_score: float,
                       agreeing_score: float = AGREEING_MIN_SCORE) -> Placement | None:
    """The placement a crop is built on, or None: the first (in TEMPLATE_CLASSES order) that
    scores `min_score`; else, when two templates put the face at the same place, the better
    of the two if both score `agreeing_score`. Never a placement below both bars."""
    for p in placements:
        if p.score >= min_score:
            return p
    for i, a in enumerate(placements):
        for b in placements[i + 1:]:
            if min(a.score, b.score) >= agreeing_score and iou(a.box, b.box) >= AGREEING_MIN_IOU:
                return max((a, b), key=lambda p: p.score)
    return None


def agreeing(candidates: Sequence[tuple[FaceBox, float]], reference: FaceBox | None, min_iou: float) -> tuple[FaceBox, float] | None:
    """The relaxed pass's (box, probability) that overlaps the reference most, when it
    overlaps it by `min_iou` at least; None otherwise, or without a reference to check
    against (a lone photo's relaxed "face" could be a shirt's print)."""
    if reference is None or not candidates:
        return None
    best = max(candidates, key=lambda c: iou(c[0], reference))
    return best if iou(best[0], reference) >= min_iou else None


def auto_fallback_size(crops: Iterable[Box]) -> tuple[int, int] | None:
    """1.2 x the mean padded crop (W, H) of detected photos, rounded as the reference was
    (213 x 283 gave 256 x 340); None without detections."""
    boxes = [b for b in crops if not b.empty]
    if not boxes:
        return None
    mean_w = sum(b.width for b in boxes) / len(boxes)
    mean_h = sum(b.height for b in boxes) / len(boxes)
    return round(AUTO_FALLBACK_FACTOR * mean_w), round(AUTO_FALLBACK_FACTOR * mean_h)
