"""Synthetic 384 x 512 portraits built from a real face, for tests, benchmarks and the demo.

The only real face we may ship is `skimage.data.astronaut()` (public domain, no download).
Shifting, scaling, flipping it and drawing masks over it gives portraits that look like the
dataset's (a person filling a small part of the photo) and that MTCNN treats like real ones:
bare faces are found, nose-covering masks are often missed. Everything is seeded, so a given
index always yields the same pixels.
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from .naming import CLASSES as TRAIN_CLASSES

WIDTH, HEIGHT = 384, 512

# Where the astronaut's face lies in skimage's 512 x 512 picture, measured once with MTCNN
# (box, then eyes, nose, mouth corners). Masks are drawn relative to these points.
_FACE_BOX = (181.1, 62.2, 267.7, 172.1)
_NOSE_Y = 129.0
_EYES_Y = 102.7
_FACE_CENTRE = ((_FACE_BOX[0] + _FACE_BOX[2]) / 2, (_FACE_BOX[1] + _FACE_BOX[3]) / 2)

MASK_COLOURS_RGB = {
    "white": (235, 235, 235),
    "surgical_blue": (140, 190, 225),
    "black": (25, 25, 30),
    "pink": (230, 150, 170),
    "navy": (30, 40, 90),
}


@dataclass(frozen=True)
class Portrait:
    """One generated photo and how it was made (for assertions and readable failures)."""

    rgb: np.ndarray
    scale: float
    shift: tuple[int, int]
    flipped: bool
    mask: str | None  # None, "proper" (covers the nose) or "incorrect" (mouth and chin only)
    mask_colour: str | None


def _astronaut() -> np.ndarray:
    from skimage import data

    return data.astronaut()


def portrait(
    index: int,
    *,
    mask: str | None = None,
    mask_colour: str | None = None,
    scale: float | None = None,
    shift: tuple[int, int] | None = None,
    flip: bool | None = None,
    size: tuple[int, int] = (WIDTH, HEIGHT),
) -> Portrait:
    """Build portrait number `index`; any argument left as None is drawn from the seed."""
    import cv2

    rng = np.random.default_rng(1_000 + index)
    width, height = size
    scale = float(rng.uniform(1.4, 2.6)) if scale is None else scale
    if shift is None:
        shift = (int(rng.integers(-40, 41)), int(rng.integers(-40, 41)))
    flip = bool(rng.integers(0, 2)) if flip is None else flip
    colour_a, colour_b = rng.integers(40, 220, size=(2, 3))

    # Affine map astronaut -> canvas: scale about the face centre, land it in the upper middle.
    target_x = width / 2 + shift[0]
    target_y = height * 0.37 + shift[1]
    src = _astronaut()
    if flip:
        src = src[:, ::-1]
    centre_x = (src.shape[1] - _FACE_CENTRE[0]) if flip else _FACE_CENTRE[0]
    matrix = np.array(
        [[scale, 0, target_x - scale * centre_x], [0, scale, target_y - scale * _FACE_CENTRE[1]]]
    )
    person = cv2.warpAffine(np.ascontiguousarray(src), matrix, (width, height), flags=cv2.INTER_LINEAR)
    covered = cv2.warpAffine(
        np.full(src.shape[:2], 255, np.uint8), matrix, (width, height), flags=cv2.INTER_NEAREST
    )
    ramp = np.linspace(0.0, 1.0, height)[:, None, None]
    background = (colour_a * (1 - ramp) + colour_b * ramp).repeat(width, axis=1)
    background += rng.normal(0, 6, size=background.shape)
    rgb = np.where(covered[..., None] > 0, person, np.clip(background, 0, 255)).astype(np.uint8)

    colour = None
    if mask is not None:
        colour = mask_colour or list(MASK_COLOURS_RGB)[int(rng.integers(0, len(MASK_COLOURS_RGB)))]
        _draw_mask(rgb, mask, MASK_COLOURS_RGB[colour], matrix, flip, src.shape[1])
    return Portrait(rgb, scale, shift, flip, mask, colour)


def _draw_mask(
    rgb: np.ndarray, kind: str, colour: tuple[int, int, int], matrix: np.ndarray, flip: bool, src_w: int
) -> None:
    """Draw a cloth mask polygon: 'proper' from just under the eyes, 'incorrect' under the nose."""
    import cv2

    x1, _, x2, y2 = _FACE_BOX
    if kind == "proper":
        top = _EYES_Y + 0.45 * (_NOSE_Y - _EYES_Y)
    elif kind == "incorrect":
        top = _NOSE_Y + 8
    else:
        raise ValueError(f"unknown mask kind {kind!r}: use 'proper' or 'incorrect'")
    outline = np.array(
        [
            (x1 - 4, top + 6), (x1 + 12, top), (x2 - 12, top), (x2 + 4, top + 6),
            (x2 + 2, y2 - 18), (x2 - 22, y2 + 6), (x1 + 22, y2 + 6), (x1 - 2, y2 - 18),
        ],
        dtype=np.float64,
    )
    if flip:
        outline[:, 0] = src_w - outline[:, 0]
    canvas_pts = outline @ matrix[:, :2].T + matrix[:, 2]
    cv2.fillPoly(rgb, [np.round(canvas_pts).astype(np.int32)], colour, lineType=cv2.LINE_AA)


def class_mask(photo_class: str) -> str | None:
    """The mask a dataset class wears: mask1..5 proper, incorrect_mask incorrect, normal none."""
    if photo_class.startswith("mask"):
        return "proper"
    if photo_class == "incorrect_mask":
        return "incorrect"
    return None


def encode(rgb: np.ndarray, ext: str = ".jpg", quality: int = 92) -> bytes:
    """RGB array -> file bytes in the format the extension names."""
    import cv2

    params = [cv2.IMWRITE_JPEG_QUALITY, quality] if ext in (".jpg", ".jpeg") else []
    ok, buf = cv2.imencode(ext, np.ascontiguousarray(rgb[..., ::-1]), params)
    if not ok:
        raise ValueError(f"cannot encode {ext}")
    return buf.tobytes()


@dataclass(frozen=True)
class Person:
    folder: str
    gender: str
    race: str
    age: int


def people(count: int) -> list[Person]:
    """Person folders in the dataset's naming style, e.g. 000001_female_Asian_45."""
    rng = np.random.default_rng(7)
    out = []
    for i in range(count):
        gender = ("female", "male")[int(rng.integers(0, 2))]
        race = ("Asian", "Black", "White", "Hispanic")[int(rng.integers(0, 4))]
        age = int(rng.integers(19, 61))
        out.append(Person(f"{i + 1:06d}_{gender}_{race}_{age}", gender, race, age))
    return out


def dataset(n_people: int = 6, n_eval: int = 6, *, junk: bool = True) -> Iterator[tuple[str, bytes]]:
    """Yield (relative key, bytes) of a small dataset shaped like the real one.

    train/images/<person>/<class>.<ext> for the seven classes, eval/images/<hash>.jpg, and
    train_data.csv / test_data.csv whose `path` column holds the photos' relative paths.
    With `junk`, the bucket mess a real dataset carries: a hidden `._` file, a zero-byte
    photo and a non-image with a photo's name.
    """
    train_rows = []
    index = 0
    exts = (".jpg", ".jpg", ".jpeg", ".png")
    persons = people(n_people)
    for p_i, person in enumerate(persons):
        for c_i, cls in enumerate(TRAIN_CLASSES):
            ext = exts[(p_i + c_i) % len(exts)] if p_i % 3 == 2 else ".jpg"
            key = f"train/images/{person.folder}/{cls}{ext}"
            photo = encode(portrait(index, mask=class_mask(cls)).rgb, ext)
            zero_byte = junk and p_i == len(persons) - 1 and cls == "mask3"
            yield key, (b"" if zero_byte else photo)
            train_rows.append([key, person.gender, person.race, person.age, cls])
            index += 1
    test_rows = []
    for e_i in range(n_eval):
        name = hashlib.sha1(f"eval-{e_i}".encode()).hexdigest()[:40]
        key = f"eval/images/{name}.jpg"
        kind = (None, "proper", "incorrect")[e_i % 3]
        yield key, encode(portrait(10_000 + e_i, mask=kind).rgb)
        test_rows.append([key])
        index += 1
    if junk:
        yield f"train/images/{persons[0].folder}/._mask1.jpg", b"\x00\x05\x16\x07 AppleDouble"
        notes = "eval/images/0000000000000000000000000000000000000000.jpg"
        yield notes, b"<html>not a photo</html>"
        test_rows.append([notes])
    yield "train_data.csv", _csv(["path", "gender", "race", "age", "mask"], train_rows)
    yield "test_data.csv", _csv(["path"], test_rows)


def _csv(header: list[str], rows: list[list]) -> bytes:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buf.getvalue().encode()
