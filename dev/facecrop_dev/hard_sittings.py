"""Hard masked sittings from real faces, with the true face box of every photo.

`samples.sitting` is easy: one face, the same framing within a sitting, flat cloth masks. On
real portraits MTCNN misses about a quarter of the masked photos, and what finds them must be
measured on photos as hard. These sittings are built from the two real faces that ship in
registry packages under a public-domain licence:

* `skimage.data.astronaut()`: Eileen Collins (NASA), in scikit-image;
* matplotlib's `sample_data/grace_hopper.jpg`: Grace Hopper (US Navy), in matplotlib.

Each sitting is one person photographed seven times (train/images/<person>/<class>.jpg,
384 x 512) with the same background, lighting and mask wardrobe, and moving between photos as
real sitters do: shift +-30 px, scale +-15 %, rotation +-12 degrees; faces 60 to 150 px wide,
a quarter of the sittings near the left or right edge. Photos vary in exposure (some
underexposed or flat), defocus, sensor noise and JPEG quality (80-95). Masks are drawn in the
face's own frame (eyes, nose tip and mouth from MTCNN's landmarks on the source, carried by
the same warp) with surgical pleats and a nose wire, KN95 seams, cloth weaves and prints
(a skin-coloured one too), shading that follows the cheeks, a feathered edge and ear loops:
mask1..5 cover the nose (their top edge 15-55 % of the way from the eyes to the nose tip),
incorrect_mask sits below the nose or on the chin.

The truth: the same warped photo rendered without the mask, through MTCNN with the
reference's settings; its box is what MTCNN would have said had the mask not been there. A
draw whose bare photo MTCNN cannot find is drawn again (the photo is left out after six).
Everything is seeded: a sitting index always gives the same bytes and boxes.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache

import numpy as np

from facecrop_ops.dataset.naming import CLASSES

WIDTH, HEIGHT = 384, 512
FaceBox = tuple[float, float, float, float]


@dataclass(frozen=True)
class Source:
    """A real face: how to load it, and MTCNN's box and five landmarks on it (measured once
    with facenet-pytorch's defaults: eyes, nose tip, mouth corners)."""

    name: str
    licence: str
    load: Callable[[], np.ndarray]
    box: FaceBox
    landmarks: tuple[tuple[float, float], ...]
    window: float = 1.6  # half-width of the visible head and shoulders, in face widths


def _astronaut() -> np.ndarray:
    from skimage import data

    return data.astronaut()


def _hopper() -> np.ndarray:
    import cv2
    from matplotlib import cbook

    path = cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
    return np.ascontiguousarray(cv2.imread(str(path), cv2.IMREAD_COLOR)[..., ::-1])


SOURCES = (
    Source("astronaut", "public domain (NASA), skimage.data.astronaut", _astronaut, (181.1, 62.2, 267.7, 172.1),
           ((205.0, 101.7), (246.8, 103.7), (224.7, 129.0), (201.7, 139.2), (245.3, 141.9))),
    Source("hopper", "public domain (US Navy), matplotlib sample_data/grace_hopper.jpg", _hopper,
           (174.4, 119.6, 355.6, 340.5), ((221.7, 192.2), (309.8, 186.1), (269.4, 239.2), (232.7, 279.6), (306.6, 275.9))),
)


@cache
def _pixels(name: str) -> np.ndarray:
    return next(s for s in SOURCES if s.name == name).load()


@dataclass(frozen=True)
class HardPhoto:
    """One photo of a hard sitting: its key, JPEG bytes, true face box and how it was made."""

    key: str
    data: bytes
    photo_class: str
    true_box: FaceBox
    source: str
    style: str | None  # mask style, None for the bare face
    worn: str | None  # "proper", "below_nose", "chin" or None
    angle: float
    face_width: float
    near_edge: bool


# name: (kind, base RGB)
MASK_STYLES = {
    "surgical_blue": ("surgical", (150, 195, 225)),
    "surgical_white": ("surgical", (232, 234, 236)),
    "surgical_green": ("surgical", (120, 190, 170)),
    "surgical_black": ("surgical", (38, 38, 42)),
    "kn95_white": ("kn95", (238, 238, 232)),
    "cloth_black": ("cloth", (28, 28, 32)),
    "cloth_navy": ("cloth", (35, 45, 90)),
    "cloth_grey": ("cloth", (130, 130, 135)),
    "cloth_red": ("cloth", (170, 40, 50)),
    "cloth_print": ("print", (220, 210, 190)),
    "cloth_check": ("check", (60, 90, 140)),
    "cloth_skin": ("cloth", (205, 170, 140)),  # skin-coloured: the hardest for a detector
    "cloth_beige": ("cloth", (190, 160, 135)),
    "surgical_pink": ("surgical", (228, 182, 186)),
}


def sitting(index: int) -> list[HardPhoto]:
    """The seven photos of sitting `index` (fewer when MTCNN could not find a bare face)."""
    import cv2

    src = SOURCES[index % len(SOURCES)]
    rng = np.random.default_rng([17, index])
    box = np.array(src.box)
    face_w = box[2] - box[0]
    base_w = rng.uniform(60, 150)
    flip = bool(rng.integers(0, 2))
    edge = bool(rng.random() < 0.25)
    if edge:
        cx = WIDTH / 2 + float(rng.choice([-1, 1])) * (WIDTH / 2 - base_w / 2 - rng.uniform(2, 18))
    else:
        cx = WIDTH / 2 + rng.uniform(-60, 60)
    cy = HEIGHT * 0.36 + rng.uniform(-50, 50)
    bg = _background(rng)
    tint = rng.uniform(0.9, 1.1, 3).astype(np.float32)
    styles = rng.choice(list(MASK_STYLES), size=6, replace=False)
    person = f"{index + 1:06d}_{src.name}"
    out = []
    for i, cls in enumerate(CLASSES):
        for attempt in range(6):
            r = np.random.default_rng([17, index, i, attempt])
            scale = base_w / face_w * r.uniform(0.85, 1.15)
            angle = float(r.uniform(-12, 12))
            turn = float(r.uniform(-0.3, 0.3))
            ccx = cx + r.uniform(-30, 30)
            if edge:  # a sitter near the edge stays near it
                ccx = float(np.clip(ccx, base_w * 0.45, WIDTH - base_w * 0.45))
            m = _place(src, scale, angle, (ccx, cy + r.uniform(-30, 30)), flip, turn)
            bare = _warp_person(src, m, bg) * tint
            bare = _expose(bare, r)
            quality = int(r.integers(80, 96))
            true_box = _truth(_jpeg(bare, quality)[1], _transform(_corners(box), m))
            if true_box is not None:
                break
        else:
            continue
        img = bare.copy()
        style = worn = None
        if cls != "normal":
            style = str(styles[i])
            worn = "proper" if cls.startswith("mask") else ("below_nose" if r.random() < 0.7 else "chin")
            _draw_mask(img, _transform(np.array(src.landmarks), m), true_box[2] - true_box[0], style, worn, r)
        if r.random() < 0.35:  # defocus: the camera focused on the background or the shoulders
            img = cv2.GaussianBlur(img, (0, 0), float(r.uniform(0.8, 2.0)))
        img = img + r.normal(0, r.uniform(2, 6), img.shape).astype(np.float32)
        out.append(HardPhoto(f"train/images/{person}/{cls}.jpg", _jpeg(img, quality)[0], cls, true_box, src.name,
                             style, worn, angle, float(true_box[2] - true_box[0]), edge))
    return out


def sittings(count: int, start: int = 0) -> Iterator[HardPhoto]:
    """Every photo of sittings start..start+count-1. The benchmark uses 0..; thresholds are
    chosen on sittings from 1000 on, so they are not fitted to the photos they are judged on."""
    for index in range(start, start + count):
        yield from sitting(index)


# --------------------------------------------------------------------------- rendering


def _background(rng: np.random.Generator) -> np.ndarray:
    """A studio wall: a two-colour gradient with soft blotches."""
    import cv2

    a, b = rng.integers(30, 230, size=(2, 3)).astype(np.float32)
    t = np.linspace(0, 1, HEIGHT, dtype=np.float32)[:, None, None]
    img = np.broadcast_to(a * (1 - t) + b * t, (HEIGHT, WIDTH, 3)).copy()
    blobs = rng.normal(0, 25, (HEIGHT // 8, WIDTH // 8, 3)).astype(np.float32)
    return img + cv2.resize(cv2.GaussianBlur(blobs, (0, 0), 3), (WIDTH, HEIGHT))


def _place(src: Source, scale: float, angle: float, centre: tuple[float, float], flip: bool, turn: float) -> np.ndarray:
    """The map source -> photo (3 x 3, projective) that puts the face's centre at `centre`:
    mirrored, rotated, scaled, then turned about the vertical axis by `turn` (the side of the
    face away from the camera shrinks: a head turned a little, as a 2-D photo can show it)."""
    import cv2

    cx, cy = (src.box[0] + src.box[2]) / 2, (src.box[1] + src.box[3]) / 2
    m = np.vstack([cv2.getRotationMatrix2D((cx, cy), angle, scale), [0, 0, 1]])
    if flip:  # mirror about the face's centre first
        m = m @ np.array([[-1, 0, 2 * cx], [0, 1, 0], [0, 0, 1]], float)
    m[:2, 2] += np.array(centre) - np.array([cx, cy])
    face_w = scale * (src.box[2] - src.box[0])
    to_centre = np.array([[1, 0, -centre[0]], [0, 1, -centre[1]], [0, 0, 1]], float)
    perspective = np.array([[1, 0, 0], [0, 1, 0], [turn / face_w, 0, 1]], float)
    return np.linalg.inv(to_centre) @ perspective @ to_centre @ m


def _warp_person(src: Source, m: np.ndarray, bg: np.ndarray) -> np.ndarray:
    """Head and shoulders of the source, warped onto the background with a feathered edge."""
    import cv2

    rgb = _pixels(src.name)
    x1, y1, x2, y2 = src.box
    fw, fh, cx = x2 - x1, y2 - y1, (x1 + x2) / 2
    alpha = np.zeros(rgb.shape[:2], np.float32)
    alpha[max(0, int(y1 - 0.9 * fh)):int(y2 + 2.5 * fh), max(0, int(cx - src.window * fw)):int(cx + src.window * fw)] = 1
    alpha = cv2.GaussianBlur(alpha, (0, 0), max(2.0, 0.05 * fw))
    scale = math.sqrt(abs(np.linalg.det(m[:2, :2])))
    if scale < 1:  # shrinking: low-pass first, as a lens and a sensor would, instead of aliasing
        rgb = cv2.GaussianBlur(rgb, (0, 0), 0.5 / scale)
    person = cv2.warpPerspective(rgb, m, (WIDTH, HEIGHT), flags=cv2.INTER_LINEAR)
    a = cv2.warpPerspective(alpha, m, (WIDTH, HEIGHT), flags=cv2.INTER_LINEAR)[..., None]
    return person.astype(np.float32) * a + bg * (1 - a)


def _expose(img: np.ndarray, r: np.random.Generator) -> np.ndarray:
    """Exposure and contrast as cameras get them wrong: a third of photos underexposed, a
    fifth flat (low contrast), the rest within +-10 %."""
    roll = r.random()
    if roll < 0.33:
        gain, offset = r.uniform(0.45, 0.75), r.uniform(-10, 5)
    elif roll < 0.53:
        mean = float(img.mean())
        contrast = r.uniform(0.5, 0.7)
        return (img - mean) * contrast + mean + r.uniform(-10, 10)
    else:
        gain, offset = r.uniform(0.9, 1.1), r.uniform(-12, 12)
    return img * gain + offset


def _jpeg(img: np.ndarray, quality: int) -> tuple[bytes, np.ndarray]:
    import cv2

    ok, buf = cv2.imencode(".jpg", np.clip(img, 0, 255).astype(np.uint8)[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("cannot encode")
    return buf.tobytes(), np.ascontiguousarray(cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1])


def _corners(box: np.ndarray) -> np.ndarray:
    return np.array([[box[0], box[1]], [box[2], box[1]], [box[2], box[3]], [box[0], box[3]]])


def _transform(points: np.ndarray, m: np.ndarray) -> np.ndarray:
    moved = np.hstack([points, np.ones((len(points), 1))]) @ m.T
    return moved[:, :2] / moved[:, 2:]


@cache
def _detector():  # noqa: ANN202 - a facecrop_ops Detector, imported lazily
    from facecrop_ops.config.crop import Settings
    from facecrop_ops.vision.detector import Detector

    return Detector(Settings(device="cpu", workers=1))


def _truth(bare: np.ndarray, corners: np.ndarray) -> FaceBox | None:
    """MTCNN's box (reference settings) on the bare photo, when it is the warped face."""
    from facecrop_ops.vision.geometry import iou

    geo = (corners[:, 0].min(), corners[:, 1].min(), corners[:, 0].max(), corners[:, 1].max())
    (found,) = _detector().candidates([bare])
    near = [b for b, _ in found if iou(b, geo) > 0.4]
    return max(near, key=lambda b: iou(b, geo)) if near else None


def _face_frame(marks: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, float, np.ndarray, np.ndarray]:
    """Origin at the eyes' midpoint, x along the eye line, y down, unit = eye distance; the
    nose tip and the mouth's centre in that frame."""
    le, re_, nose, ml, mr = marks
    if le[0] > re_[0]:  # mirrored: the landmark order is too
        le, re_, ml, mr = re_, le, mr, ml
    origin = (le + re_) / 2
    d = float(np.linalg.norm(re_ - le))
    ex = (re_ - le) / d
    ey = np.array([-ex[1], ex[0]])

    def local(p: np.ndarray) -> np.ndarray:
        return np.array([(p - origin) @ ex, (p - origin) @ ey]) / d

    return origin, ex, ey, d, local(nose), (local(ml) + local(mr)) / 2


def _draw_mask(img: np.ndarray, marks: np.ndarray, face_w: float, style: str, worn: str, rng: np.random.Generator) -> None:
    """Paint a mask in place: worn 'proper' (over the nose), 'below_nose' or 'chin'."""
    import cv2

    origin, ex, ey, d, nose, mouth = _face_frame(marks)
    half = 0.5 * face_w / d * rng.uniform(0.95, 1.1)  # half the face's width, in eye distances
    ny, my = nose[1], mouth[1]
    chin = my + rng.uniform(0.75, 0.95)
    top = {"proper": ny * rng.uniform(0.1, 0.45),
           "below_nose": ny + rng.uniform(0.15, 0.4) * (my - ny),
           "chin": my + rng.uniform(0.1, 0.3)}[worn]
    cxl = nose[0] * 0.6  # the mask's centre line follows the nose a little (pose)
    ts = np.linspace(-1, 1, 41)
    lift = 1 if worn == "proper" else 0.5
    top_edge = [(cxl + t * half, top + 0.22 * abs(t) ** 1.5 * lift) for t in ts]
    right = [(cxl + half * (1 - 0.08 * s), top + 0.22 + s * (chin - 0.25 - top - 0.22)) for s in np.linspace(0, 1, 10)]
    bottom = [(cxl + t * half * 0.92, chin - 0.3 * t * t) for t in ts[::-1]]
    left = [(cxl - half * (1 - 0.08 * s), chin - 0.25 - s * (chin - 0.25 - top - 0.22)) for s in np.linspace(0, 1, 10)]
    poly = np.array(top_edge + right + bottom + left)
    on_photo = origin + poly[:, :1] * d * ex + poly[:, 1:] * d * ey
    alpha = np.zeros(img.shape[:2], np.float32)
    cv2.fillPoly(alpha, [np.round(on_photo * 4).astype(np.int32)], 1.0, lineType=cv2.LINE_AA, shift=2)
    alpha = cv2.GaussianBlur(alpha, (0, 0), max(0.6, d / 60))
    ys, xs = np.nonzero(alpha > 0.001)
    if len(xs) == 0:
        return
    x0, x1, y0, y1 = xs.min(), xs.max() + 1, ys.min(), ys.max() + 1
    gy, gx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    rel = np.stack([gx - origin[0], gy - origin[1]], -1)
    u = (rel @ ex) / d - cxl  # across the face, 0 on the mask's centre line
    v = (rel @ ey) / d  # down the face
    vn = (v - top) / max(1e-3, chin - top)  # 0 at the top edge, 1 at the bottom
    h, w = y1 - y0, x1 - x0
    kind, base = MASK_STYLES[style]
    base_rgb = np.array(base, np.float32) * rng.uniform(0.9, 1.08)
    patch = np.broadcast_to(base_rgb, (h, w, 3)).copy()
    fine = cv2.GaussianBlur(rng.normal(0, 1, (h, w)).astype(np.float32), (0, 0), 0.7)
    shade = np.ones((h, w), np.float32)
    if kind == "surgical":
        phase = (vn * rng.integers(3, 5)) % 1.0  # pleats
        shade *= 1 - 0.10 * np.clip((phase - 0.75) / 0.25, 0, 1) + 0.05 * np.clip(1 - phase / 0.2, 0, 1)
        shade *= np.where(np.abs(u) > half - 0.12, 1.06, 1.0)  # bound side edges
        shade *= np.where((vn < 0.07) & (np.abs(u) < 0.45 * half), 0.9, 1.0)  # nose wire
        fine *= 5
    elif kind == "kn95":
        shade *= 1 - 0.18 * np.exp(-(u / 0.05) ** 2)  # centre seam
        shade *= 1 - 0.08 * np.exp(-((vn - 0.45) / 0.03) ** 2)
        fine *= 4
    else:  # cloth, print, check
        k = 2 * math.pi * rng.uniform(9, 14)
        shade *= 1 + 0.05 * np.sin(u * k) * np.sin(v * k)  # weave
        shade *= 1 - 0.25 * np.exp(-(u / 0.04) ** 2)  # centre seam
        fine *= 9
        if kind == "check":
            c = ((np.floor(u * 5) + np.floor(v * 5)) % 2).astype(np.float32)
            patch = patch * (1 - c[..., None]) + np.array([200, 200, 210], np.float32) * c[..., None]
        elif kind == "print":
            for _ in range(int(40 * half)):
                colour = rng.integers(20, 230, 3).astype(np.float32)
                pu, pv, radius = rng.uniform(-half, half), rng.uniform(top, chin), rng.uniform(0.05, 0.14)
                patch[(u - pu) ** 2 + (v - pv) ** 2 < radius * radius] = colour
    curvature = 1 - 0.35 * np.clip(np.abs(u) / half, 0, 1) ** 2.5  # it wraps round the cheeks
    patch = patch * (shade * curvature)[..., None] + fine[..., None]
    # lit like the skin under it
    lum = cv2.GaussianBlur(img[y0:y1, x0:x1].mean(-1), (0, 0), max(2.0, d / 4))
    light = np.clip(0.65 + 0.35 * lum / max(1.0, float(np.percentile(lum, 90))), 0.6, 1.1)
    a = alpha[y0:y1, x0:x1, None]
    img[y0:y1, x0:x1] = img[y0:y1, x0:x1] * (1 - a) + patch * light[..., None] * a
    loop = tuple(float(c) * 0.9 for c in base)
    for sign in (-1, 1):  # ear loops, from the mask's corners towards the ears
        for vv, ev in ((top + 0.25, -0.1), (chin - 0.35, 0.35)):
            p = origin + (cxl + sign * half) * d * ex + vv * d * ey
            q = origin + (cxl + sign * (half + 0.3)) * d * ex + ev * d * ey
            cv2.line(img, tuple(int(t) for t in p), tuple(int(t) for t in q), loop, max(1, int(d / 30)), cv2.LINE_AA)
