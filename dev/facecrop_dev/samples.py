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

from facecrop_ops.dataset.naming import CLASSES as TRAIN_CLASSES

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
    mask: str | None  # None, "proper" (covers the nose), "incorrect" (below the nose) or "chin"
    mask_colour: str | None
    face_box: tuple[float, float, float, float]  # where the face truly is (MTCNN's box on the bare face)


def _astronaut() -> np.ndarray:
    from skimage import data

    return data.astronaut()


def portrait(
    index: int,
    *,
    mask: str | None = None,
    mask_colour: str | None = None,
    texture: str = "plain",
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
        _draw_mask(rgb, mask, MASK_COLOURS_RGB[colour], matrix, flip, src.shape[1], texture)
    x1, y1, x2, y2 = _FACE_BOX
    if flip:
        x1, x2 = src.shape[1] - x2, src.shape[1] - x1
    (cx1, cy1), (cx2, cy2) = (matrix[:, :2] @ np.array(corner) + matrix[:, 2] for corner in ((x1, y1), (x2, y2)))
    return Portrait(rgb, scale, shift, flip, mask, colour, (float(cx1), float(cy1), float(cx2), float(cy2)))


def _draw_mask(
    rgb: np.ndarray, kind: str, colour: tuple[int, int, int], matrix: np.ndarray, flip: bool, src_w: int,
    texture: str = "plain",
) -> None:
    """Draw a cloth mask polygon: 'proper' from just under the eyes, 'incorrect' under the nose,
    'chin' below the mouth; 'stripes' or 'dots' print a pattern on the cloth."""
    import cv2

    x1, _, x2, y2 = _FACE_BOX
    tops = {"proper": _EYES_Y + 0.45 * (_NOSE_Y - _EYES_Y), "incorrect": _NOSE_Y + 8, "chin": y2 - 20}
    if kind not in tops:
        raise ValueError(f"unknown mask kind {kind!r}: use one of {', '.join(tops)}")
    if texture not in ("plain", "stripes", "dots"):
        raise ValueError(f"unknown texture {texture!r}: use plain, stripes or dots")
    top = tops[kind]
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
    polygon = [np.round(canvas_pts).astype(np.int32)]
    if texture == "plain":
        cv2.fillPoly(rgb, polygon, colour, lineType=cv2.LINE_AA)
        return
    cloth = np.zeros(rgb.shape[:2], np.uint8)
    cv2.fillPoly(cloth, polygon, 255)
    pattern = np.zeros_like(cloth)
    step = max(4, int(round(6 * matrix[0, 0])))
    if texture == "stripes":
        pattern[:, (np.arange(rgb.shape[1]) // (step // 2)) % 2 == 0] = 255
    else:
        for y in range(0, rgb.shape[0], step):
            for x in range((y // step) % 2 * step // 2, rgb.shape[1], step):
                cv2.circle(pattern, (x, y), max(1, step // 4), 255, -1)
    dark = tuple(int(c * 0.55) for c in colour)
    rgb[cloth > 0] = colour
    rgb[(cloth > 0) & (pattern > 0)] = dark


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


# What each class wears in a sitting: (mask kind, colour, texture).
SITTING_MASKS = {
    "mask1": ("proper", "white", "plain"), "mask2": ("proper", "surgical_blue", "stripes"),
    "mask3": ("proper", "black", "plain"), "mask4": ("proper", "pink", "dots"), "mask5": ("proper", "navy", "stripes"),
    "normal": (None, None, "plain"),
}


def sitting(person: int) -> Iterator[tuple[str, Portrait]]:
    """One person's seven photos from one sitting, as the real dataset has them: the same
    framing give or take 4 px and 3 % of scale; five masks worn correctly in several colours
    and textures, one below the nose or on the chin (every other person), one bare face.
    Yields (train/images/<person>/<class>.jpg, Portrait); the portraits know the true face."""
    rng = np.random.default_rng(50_000 + person)
    scale, flip = float(rng.uniform(1.4, 2.6)), bool(rng.integers(0, 2))
    shift = (int(rng.integers(-35, 36)), int(rng.integers(-35, 36)))
    for c, cls in enumerate(TRAIN_CLASSES):
        kind, colour, texture = SITTING_MASKS.get(cls) or (("incorrect" if person % 2 else "chin"), "surgical_blue", "plain")
        jitter = (int(rng.integers(-4, 5)), int(rng.integers(-4, 5)))
        yield f"train/images/{person + 1:06d}_sitting/{cls}.jpg", portrait(
            20_000 + person * 7 + c, mask=kind, mask_colour=colour, texture=texture, flip=flip,
            scale=scale * float(rng.uniform(0.97, 1.03)), shift=(shift[0] + jitter[0], shift[1] + jitter[1]),
        )


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
