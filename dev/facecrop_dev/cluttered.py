"""Portraits as phones take them in a room, for the speed benchmark's harder mode.

`samples.portrait` is easy on MTCNN: a flat wall and one face of ~150 px, so P-Net proposes
few candidates and R-Net/O-Net have little to do. Detection's cost is not fixed per photo: it
grows with the candidates P-Net proposes, which textured walls, streaks of light, shelves and
large faces multiply. These photos put the real faces `hard_sittings` ships (public domain)
100 to 180 px wide in 384 x 512 on such backgrounds: wallpaper texture at several scales,
blinds and light streaks, framed clutter, then camera exposure, sensor noise and JPEG. Five
of every seven wear a mask, as in the dataset. Seeded: an index always gives the same bytes.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from facecrop_dev.hard_sittings import (
    HEIGHT,
    MASK_STYLES,
    SOURCES,
    WIDTH,
    _draw_mask,
    _expose,
    _jpeg,
    _place,
    _transform,
    _warp_person,
)
from facecrop_ops.dataset.naming import CLASSES


def photo(index: int) -> tuple[str, bytes]:
    """(key, JPEG bytes) of photo `index`: train/images/<person>/<class>.jpg, seven per person."""
    import cv2

    rng = np.random.default_rng([27, index])
    src = dataclasses.replace(SOURCES[index % len(SOURCES)], window=rng.uniform(0.9, 1.3))  # more room shows
    cls = CLASSES[index % len(CLASSES)]
    face_w = src.box[2] - src.box[0]
    width = rng.uniform(100, 180)
    centre = (WIDTH / 2 + rng.uniform(-50, 50), HEIGHT * 0.38 + rng.uniform(-40, 40))
    m = _place(src, width / face_w, float(rng.uniform(-10, 10)), centre, bool(rng.integers(0, 2)), float(rng.uniform(-0.25, 0.25)))
    img = _expose(_warp_person(src, m, background(rng)), rng)
    if cls != "normal":
        worn = "proper" if cls.startswith("mask") else "below_nose"
        _draw_mask(img, _transform(np.array(src.landmarks), m), width, str(rng.choice(list(MASK_STYLES))), worn, rng)
    streaks = np.zeros_like(img)
    for _ in range(int(rng.integers(1, 4))):  # light across the whole frame, sitter included
        p1, p2 = (tuple(int(v) for v in rng.integers(0, (WIDTH, HEIGHT))) for _ in range(2))
        cv2.line(streaks, p1, p2, rng.uniform(120, 255, 3).tolist(), int(rng.integers(2, 9)), cv2.LINE_AA)
    img = img * 0.75 + np.maximum(img, streaks) * 0.25
    img = img + rng.normal(0, rng.uniform(2, 6), img.shape).astype(np.float32)
    return f"train/images/{index // 7:06d}_{src.name}/{cls}.jpg", _jpeg(img, int(rng.integers(80, 96)))[0]


def background(rng: np.random.Generator) -> np.ndarray:
    """A room behind the sitter: textured wall, blinds or light streaks, shelves and frames."""
    import cv2

    base = rng.integers(40, 220, 3).astype(np.float32)
    img = np.broadcast_to(base, (HEIGHT, WIDTH, 3)).copy()
    for cell in (2, 6, 24):  # wallpaper and plaster texture at three scales
        noise = rng.normal(0, rng.uniform(8, 22), (HEIGHT // cell + 1, WIDTH // cell + 1, 3)).astype(np.float32)
        img += cv2.resize(noise, (WIDTH, HEIGHT), interpolation=cv2.INTER_LINEAR)
    if rng.random() < 0.6:  # blinds: bright and dark bands across the room
        period, angle = rng.uniform(10, 40), rng.uniform(-0.4, 0.4)
        yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32)
        bands = np.sin((yy + xx * angle) * (2 * np.pi / period))
        img += (bands * rng.uniform(15, 45))[..., None]
    for _ in range(int(rng.integers(6, 16))):  # streaks of light, cables, edges of furniture
        p1 = tuple(int(v) for v in rng.integers(0, (WIDTH, HEIGHT)))
        p2 = tuple(int(v) for v in rng.integers(0, (WIDTH, HEIGHT)))
        cv2.line(img, p1, p2, rng.uniform(0, 255, 3).tolist(), int(rng.integers(1, 6)), cv2.LINE_AA)
    for _ in range(int(rng.integers(4, 10))):  # shelves, frames, books
        x, y = int(rng.integers(0, WIDTH)), int(rng.integers(0, HEIGHT))
        w, h = int(rng.integers(15, 120)), int(rng.integers(10, 90))
        colour = rng.uniform(0, 255, 3).tolist()
        cv2.rectangle(img, (x, y), (x + w, y + h), colour, -1 if rng.random() < 0.5 else int(rng.integers(2, 6)))
    return img
