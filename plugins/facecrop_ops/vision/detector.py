"""MTCNN face detection over many photos: device choice, batching by size, one answer each.

torch and facenet-pytorch are imported when a Detector is built, never at import time, so
the DAG file and the pure modules load without them and nothing touches CUDA at parse time.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from facecrop_ops.config.crop import Settings


class Detection(NamedTuple):
    """The face the crop is built on: facenet's first box (largest, or most probable)."""

    box: tuple[float, float, float, float]
    prob: float
    faces: int  # how many faces MTCNN found in the photo


def resolve_device(setting: str) -> str:
    """"auto" -> "cuda" when this worker has a GPU, else "cpu"; explicit values are kept."""
    if setting != "auto":
        return setting
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


class Detector:
    """Wraps one set of MTCNN networks; build one per process and reuse it."""

    def __init__(self, settings: Settings) -> None:
        import torch

        self.settings = settings
        self.device = torch.device(resolve_device(settings.device))
        if settings.engine == "fast":
            from facecrop_ops.vision import mtcnn_fast

            self._nets = mtcnn_fast.load_nets(self.device)
        else:
            from facenet_pytorch import MTCNN

            self._mtcnn = MTCNN(
                keep_all=True,
                device=self.device,
                min_face_size=settings.min_face_size,
                thresholds=list(settings.thresholds),
                factor=settings.factor,
                select_largest=settings.select_largest,
            )

    def detect(self, images: Sequence[np.ndarray]) -> list[Detection | None]:
        """One result per image, in order. Images may differ in size: MTCNN batches need one
        size, so they are grouped by shape and run `batch_size` at a time. An image over
        DETECT_MAX_PIXELS is detected on a smaller copy, its box scaled back."""
        scaled = [_detection_copy(img) for img in images]
        if any(scale != (1.0, 1.0) for _, scale in scaled):
            found = self.detect([img for img, _ in scaled])
            return [None if d is None else d._replace(box=_unscale(d.box, scale)) for d, (_, scale) in zip(found, scaled)]
        by_shape: dict[tuple[int, ...], list[int]] = defaultdict(list)
        for i, img in enumerate(images):
            by_shape[img.shape].append(i)
        out: list[Detection | None] = [None] * len(images)
        size = self.settings.batch_size
        for indices in by_shape.values():
            for start in range(0, len(indices), size):
                chunk = indices[start : start + size]
                for i, found in zip(chunk, self._detect_batch([images[i] for i in chunk])):
                    out[i] = found
        return out

    def _detect_batch(self, batch: list[np.ndarray]) -> list[Detection | None]:
        if self.settings.engine == "fast":
            return [self._first(boxes) for boxes in self._fast(batch)]
        return [Detection(found[0][0], found[0][1], len(found)) if found else None for found in self._facenet(batch)]

    def _facenet(self, batch: list[np.ndarray]) -> list[list[tuple[tuple[float, float, float, float], float]]]:
        """facenet's own detect(): every (box, probability) per photo, in its order."""
        boxes, probs = self._mtcnn.detect(batch)
        # detect() returns object arrays whose shape depends on content; go photo by photo.
        return [[] if b is None else [(_box(x), float(q)) for x, q in zip(b, p)] for b, p in zip(list(boxes), list(probs))]

    def _fast(self, batch: list[np.ndarray]) -> list[np.ndarray]:
        import torch

        from facecrop_ops.vision.mtcnn_fast import detect_faces

        with torch.no_grad():
            return detect_faces(
                np.stack(batch), self._nets,
                min_face_size=self.settings.min_face_size,
                thresholds=self.settings.thresholds,
                factor=self.settings.factor,
                device=self.device,
            )

    def candidates(self, images: Sequence[np.ndarray]) -> list[list[tuple[tuple[float, float, float, float], float]]]:
        """Every face found in each image, as (box, probability): for a second pass, which
        judges them against other evidence instead of taking the first."""
        out = []
        for original in images:
            img, scale = _detection_copy(original)
            found = self._facenet([img])[0] if self.settings.engine != "fast" else [
                (_box(b[:4]), float(b[4])) for b in self._fast([img])[0]]
            out.append([(_unscale(box, scale), prob) for box, prob in found])
        return out

    def _first(self, boxes: np.ndarray) -> Detection | None:
        """The box facenet's `MTCNN.detect` would list first, chosen by the same numpy calls."""
        if len(boxes) == 0:
            return None
        if self.settings.select_largest:
            order = np.argsort((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]))[::-1]
            boxes = boxes[order]
        return Detection(_box(boxes[0, :4]), float(boxes[0, 4]), len(boxes))


# MTCNN's memory grows with the image (~11 bytes a pixel: its pyramid and activations). A photo
# larger than this is detected on a copy scaled down to it and the box is scaled back; today's
# default max_megapixels (50) refuses such photos anyway, so default results never change.
DETECT_MAX_PIXELS = 50_000_000


def _detection_copy(img: np.ndarray) -> tuple[np.ndarray, tuple[float, float]]:
    """The image MTCNN sees, and the (x, y) factors from the photo to it."""
    h, w = img.shape[:2]
    if h * w <= DETECT_MAX_PIXELS:
        return img, (1.0, 1.0)
    import cv2

    f = math.sqrt(DETECT_MAX_PIXELS / (h * w))
    size = (max(1, int(w * f)), max(1, int(h * f)))
    return cv2.resize(img, size, interpolation=cv2.INTER_AREA), (size[0] / w, size[1] / h)


def _unscale(box: Sequence[float], scale: tuple[float, float]) -> tuple[float, float, float, float]:
    fx, fy = scale
    return (box[0] / fx, box[1] / fy, box[2] / fx, box[3] / fy)


def _box(values: Sequence[float]) -> tuple[float, float, float, float]:
    x1, y1, x2, y2 = (float(v) for v in values)
    return (x1, y1, x2, y2)
