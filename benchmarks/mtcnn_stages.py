"""Where a photo's milliseconds go inside MTCNN, for facenet's `detect` and our fast engine.

Both engines run facenet-pytorch's own stage functions (P-, R-, O-Net, NMS, box generation),
looked up by name in their module at call time, so wrapping those names times each stage
without touching either engine's code. Wall time per stage, summed over the photos, and the
candidates each stage hands on: P-Net's raw windows, what R-Net and O-Net are given, and the
faces O-Net keeps. Used by bench_crop.py; one thread, in-process, freed memory kept as the
library's detection processes keep it (for both engines), the machine idle.
"""

from __future__ import annotations

import contextlib
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

STAGES = ("decode", "pyramid", "P-Net", "NMS", "R-Net crops", "R-Net", "O-Net crops", "O-Net", "other detect", "crop+encode")
COUNTS = ("P-Net windows", "R-Net input", "O-Net input", "faces")
COUNTED = {"P-Net": "P-Net windows", "R-Net": "R-Net input", "O-Net": "O-Net input"}  # stage -> what its count is


class StageClock:
    """Seconds per stage and candidates per stage, accumulated across calls."""

    def __init__(self) -> None:
        self.seconds: Counter[str] = Counter()
        self.counts: Counter[str] = Counter()
        self._depth = 0

    def timed(self, stage: str, fn: Callable[..., Any], count: Callable[[Any, Any], int] | None = None) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            self._depth += 1
            start = time.perf_counter()
            try:
                out = fn(*args, **kwargs)
            finally:
                self._depth -= 1
            if self._depth == 0:  # a stage called inside another is counted once, in the outer one
                self.seconds[stage] += time.perf_counter() - start
            if count is not None:
                self.counts[COUNTED.get(stage, stage)] += count(args, out)
            return out

        return wrapper

    @contextlib.contextmanager
    def add(self, stage: str) -> Iterator[None]:
        start = time.perf_counter()
        yield
        self.seconds[stage] += time.perf_counter() - start


@contextlib.contextmanager
def patched(targets: Sequence[tuple[Any, str, Callable[[Callable[..., Any]], Callable[..., Any]]]]) -> Iterator[None]:
    """Replace attribute `name` of each object by wrap(original); put every one back after."""
    saved = [(obj, name, getattr(obj, name)) for obj, name, _ in targets]
    try:
        for obj, name, wrap in targets:
            setattr(obj, name, wrap(getattr(obj, name)))
        yield
    finally:
        for obj, name, original in saved:
            setattr(obj, name, original)


def _rows(args: Any, out: Any) -> int:
    return int(args[0].shape[0])


def _common(clock: StageClock, module: Any, nets: Sequence[Any]) -> list:
    """The stage functions both engines call through their own module's names."""
    pnet, rnet, onet = nets
    return [
        (pnet, "forward", lambda f: clock.timed("P-Net", f)),
        (rnet, "forward", lambda f: clock.timed("R-Net", f, _rows)),
        (onet, "forward", lambda f: clock.timed("O-Net", f, _rows)),
        _count_windows(clock, module),
        (module, "batched_nms", lambda f: clock.timed("NMS", f)),
        (module, "batched_nms_numpy", lambda f: clock.timed("NMS", f)),
    ]


def _count_windows(clock: StageClock, module: Any) -> tuple:
    """generateBoundingBox turns P-Net's map into windows: its time is P-Net's, its rows are
    the candidates P-Net proposes."""
    return (module, "generateBoundingBox", lambda f: clock.timed("P-Net", f, lambda args, out: int(out[0].shape[0])))


def facenet_targets(clock: StageClock, mtcnn: Any) -> list:
    """facenet's detect_face: imresample makes the pyramid and, one call per candidate, the
    24 and 48 px crops for R- and O-Net."""
    from facenet_pytorch.models.utils import detect_face

    def resample(f: Callable[..., Any]) -> Callable[..., Any]:
        def split(img: Any, sz: Any) -> Any:
            stage = {(24, 24): "R-Net crops", (48, 48): "O-Net crops"}.get(tuple(sz), "pyramid")
            return clock.timed(stage, f)(img, sz)

        return split

    return [*_common(clock, detect_face, (mtcnn.pnet, mtcnn.rnet, mtcnn.onet)), (detect_face, "imresample", resample)]


def fast_targets(clock: StageClock, nets: Sequence[Any]) -> list:
    """Our engine: integral-image pyramid levels and candidate crops (24 then 48 px)."""
    from facecrop_ops.vision import mtcnn_fast

    def crops(f: Callable[..., Any]) -> Callable[..., Any]:
        def split(self: Any, image_inds: Any, y: Any, ey: Any, x: Any, ex: Any, size: int) -> Any:
            return clock.timed("R-Net crops" if size == 24 else "O-Net crops", f)(self, image_inds, y, ey, x, ex, size)

        return split

    return [*_common(clock, mtcnn_fast, nets), (mtcnn_fast._Integral, "pyramid_level", lambda f: clock.timed("pyramid", f)),
            (mtcnn_fast._Integral, "candidates", crops)]


def profile(engine: str, jpegs: Sequence[bytes], batch_size: int = 8) -> tuple[StageClock, float]:
    """Decode, detect (as `crop_photos` batches: `batch_size` photos of one size per call for the
    fast engine, one at a time as the notebook does for facenet), crop and encode every photo;
    returns the stage clock and the total wall seconds."""
    import cv2
    import torch

    from facecrop_ops.config.crop import Settings
    from facecrop_ops.vision import processor
    from facecrop_ops.vision.detector import Detector

    processor._keep_freed_memory()  # as in the library's detection processes: no page faults per batch
    clock = StageClock()
    detector = Detector(Settings(device="cpu", workers=1, engine=engine))
    if engine == "fast":
        targets = fast_targets(clock, detector._nets)
    else:
        targets = facenet_targets(clock, detector._mtcnn)
    start = time.perf_counter()
    with patched(targets), torch.no_grad():
        for at in range(0, len(jpegs), batch_size if engine == "fast" else 1):
            with clock.add("decode"):
                imgs = [cv2.cvtColor(cv2.imdecode(np.frombuffer(j, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
                        for j in jpegs[at:at + (batch_size if engine == "fast" else 1)]]
            t0 = time.perf_counter()
            found = detector.candidates(imgs) if engine != "fast" else [
                [(tuple(b[:4]), float(b[4])) for b in boxes] for boxes in detector._fast(imgs)]
            clock.seconds["detect"] += time.perf_counter() - t0
            clock.counts["faces"] += sum(len(f) for f in found)
            with clock.add("crop+encode"):
                for img, faces in zip(imgs, found):
                    h, w = img.shape[:2]
                    x1, y1, x2, y2 = (map(int, faces[0][0]) if faces else (64, 86, 320, 426))
                    x1, y1, x2, y2 = max(0, x1 - 30), max(0, y1 - 60), min(w, x2 + 30), min(h, y2 + 30)
                    face = cv2.resize(img[y1:y2, x1:x2], (210, 280), interpolation=cv2.INTER_AREA)
                    cv2.imencode(".jpg", cv2.cvtColor(face, cv2.COLOR_RGB2BGR))
    clock.seconds["other detect"] = clock.seconds.pop("detect") - sum(clock.seconds[s] for s in STAGES[1:8])
    return clock, time.perf_counter() - start


def table(results: dict[str, tuple[StageClock, float]], photos: int) -> str:
    """Milliseconds a photo per stage and candidates a photo per stage, engines side by side."""
    names = list(results)
    lines = [f"{'ms a photo':<14}" + "".join(f"{n:>12}" for n in names) + (f"{'ratio':>9}" if len(names) == 2 else "")]
    for stage in STAGES:
        ms = [results[n][0].seconds[stage] * 1000 / photos for n in names]
        ratio = f"{ms[0] / ms[1]:>8.1f}x" if len(ms) == 2 and ms[1] > 0.005 else ""
        lines.append(f"{stage:<14}" + "".join(f"{v:>12.2f}" for v in ms) + ratio)
    totals = [results[n][1] * 1000 / photos for n in names]
    lines.append(f"{'total':<14}" + "".join(f"{v:>12.2f}" for v in totals)
                 + (f"{totals[0] / totals[1]:>8.2f}x" if len(totals) == 2 else ""))
    lines.append(f"{'per photo':<14}" + "".join(f"{n:>12}" for n in names))
    for what in COUNTS:
        lines.append(f"{what:<14}" + "".join(f"{results[n][0].counts[what] / photos:>12.1f}" for n in names))
    return "\n".join(lines)
