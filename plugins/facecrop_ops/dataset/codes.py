"""The codes a run decides on: what became of a photo, what made its crop, why it has none, and
what a reviewer decided. Messages are for people and may be reworded; decisions (which photos
the next run retries, which rows a CSV rejects, which faces are removed) read these codes only.

StrEnums: a member equals its value, so manifests and JSON hold the plain words.
"""

from __future__ import annotations

from enum import StrEnum


class Status(StrEnum):
    """What the first detection pass found for a photo (every photo ends in exactly one)."""

    DETECTED = "detected"
    FALLBACK = "fallback"  # no face found by the first pass: the crop came from a rescue or the centre box
    ERROR = "error"  # no face file: unreadable, refused, gone...; the reason code says which
    EXCLUDED = "excluded"  # a reviewer marked it "no usable face": no face, left out of the CSVs


class Method(StrEnum):
    """What produced a crop. Error rows have none."""

    NONE = ""
    MTCNN = "mtcnn"
    TEMPLATE = "template"  # the sitting's upper face found by template matching
    SECOND_PASS = "second_pass"  # a relaxed detection that agrees with the siblings' box
    SIBLING = "sibling"  # the siblings' face box, borrowed
    YUNET = "yunet"  # found by the second detector (YuNet), its box in MTCNN's geometry
    CENTRE = "centre"  # the centre box: a guess
    MANUAL = "manual"  # a reviewer's box (also on excluded rows)


# Misses whose face was found (template, yunet, second_pass) or borrowed (sibling): "rescued".
RESCUES = (Method.TEMPLATE, Method.YUNET, Method.SECOND_PASS, Method.SIBLING)


class Reason(StrEnum):
    """Why a photo has no face file (status error or excluded); NONE for every other row."""

    NONE = ""
    GONE = "gone"  # the object was deleted or replaced after the run was planned
    READ_FAILED = "read_failed"  # the file could not be read (I/O error)
    UNREADABLE = "unreadable"  # empty, not an image, corrupt or truncated, unsupported format
    TOO_LARGE = "too_large"  # its header claims more than max_megapixels
    TOO_SMALL = "too_small"  # smaller than min_face_size on a side
    DETECTION_FAILED = "detection_failed"  # MTCNN raised on this photo alone
    WRITE_FAILED = "write_failed"  # its face could not be cut or encoded
    REFUSED_KEY = "refused_key"  # the plan refused it: its face's key is unsafe; never downloaded
    NO_USABLE_FACE = "no_usable_face"  # a reviewer excluded it


# Error rows the next run tries again, whatever their ETag: the photo was gone, could not be
# read, detection failed on it, or it was over max_megapixels (which may have been raised).
# An unreadable or too small photo stays so while its ETag does.
RETRIED = frozenset({Reason.GONE, Reason.READ_FAILED, Reason.DETECTION_FAILED, Reason.TOO_LARGE})


class Decision(StrEnum):
    """A reviewer's decision on a photo."""

    ACCEPT = "accept"  # the crop is right: changes nothing, never undoes an earlier box or exclusion
    BOX = "box"  # crop this face box
    NO_FACE = "no_face"  # leave the photo out
    RESET = "reset"  # undo the photo's correction
