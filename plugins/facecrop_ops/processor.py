"""The shard processor: photos in, face files and one manifest row per photo out.

This is the one code path for the CLI and the DAG's detect task. Its speed comes from
three places, measured by benchmarks/bench_crop.py:

* batched detection (same-size photos together) with the exact fast MTCNN engine;
* on CPUs, one worker process per core with one torch thread each: these small networks
  scale better across processes than across torch's intra-op threads;
* in every process, JPEG decoding and encoding run in threads, one chunk ahead of and one
  chunk behind detection, so the detector does not wait for them.

A photo that cannot be read, or fails on its own, becomes an `error` row; the batch goes on.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import sys
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import islice
from pathlib import Path

import numpy as np

from .detector import Detection, Detector, resolve_device
from .geometry import Box, fallback_box, padded_box
from .imaging import BadPhoto, cut_face, decode_rgb, encode_face, pixel_count
from .manifest import DETECTED, ERROR, FALLBACK, ManifestRow
from .naming import photo_class
from .settings import Settings

log = logging.getLogger(__name__)

@dataclass(frozen=True)
class Photo:
    """One input: `source` is its name in the manifest, `output` the face's name; the bytes
    come from `data` or are read from `path` (in the worker, so they never cross processes)."""

    source: str
    output: str
    path: str | None = None
    data: bytes | None = None

    def read(self) -> bytes:
        if self.data is not None:
            return self.data
        if self.path is None:
            raise BadPhoto("no data and no path given")
        return Path(self.path).read_bytes()

    def pixels(self) -> int:
        """Its size from the file's header alone (0 when unknown): what decoding will hold."""
        return pixel_count(self.data if self.data is not None else self.path)


@dataclass(frozen=True)
class CropResult:
    row: ManifestRow
    face: bytes | None  # the encoded face file; None for error rows


@dataclass
class _Decoded:
    photo: Photo
    rgb: np.ndarray | None
    error: str = ""


def plan_workers(settings: Settings, n_photos: int) -> int:
    """How many processes: one for a GPU (it is the bottleneck; more would each hold a copy
    of the nets in its memory), else one per core up to 8, never more than the chunks."""
    if settings.workers:
        wanted = settings.workers
    elif resolve_device(settings.device) != "cpu":
        wanted = 1
    else:
        wanted = min(os.cpu_count() or 1, 8)
    return max(1, min(wanted, -(-n_photos // _chunk_size(settings))))


def _chunk_size(settings: Settings) -> int:
    return settings.batch_size * 2


# A process decodes a chunk ahead of the one it detects and encodes the one before, so chunks
# are bounded by pixels as well as by count: 16 portraits of 384 x 512 (3 MP) make a chunk, a
# 12-megapixel phone photo makes one alone, and a worker holds a few photos' pixels, not 48.
CHUNK_PIXELS = 16_000_000


def _chunks(photos: Iterable[Photo], settings: Settings) -> Iterator[list[Photo]]:
    size = _chunk_size(settings)
    chunk: list[Photo] = []
    pixels = 0
    for photo in photos:
        n = photo.pixels()
        if chunk and (len(chunk) == size or pixels + n > CHUNK_PIXELS):
            yield chunk
            chunk, pixels = [], 0
        chunk.append(photo)
        pixels += n
    if chunk:
        yield chunk


class _Cropper:
    """What one process holds: the detector and a small thread pool for JPEG work."""

    def __init__(self, settings: Settings, threads: int) -> None:
        self.settings = settings
        self.detector = Detector(settings)
        self.pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="facecrop-io")

    def _decode(self, photo: Photo) -> _Decoded:
        try:
            rgb = decode_rgb(photo.read())
        except BadPhoto as exc:
            return _Decoded(photo, None, str(exc))
        except OSError as exc:
            return _Decoded(photo, None, f"cannot read: {exc.strerror or exc}")
        h, w = rgb.shape[:2]
        if min(h, w) < self.settings.min_face_size:
            return _Decoded(photo, None, f"too small to detect in ({w}x{h} px < min_face_size {self.settings.min_face_size})")
        return _Decoded(photo, rgb)

    def _detect(self, decoded: list[_Decoded]) -> list[Detection | None | str]:
        """Detections for the readable photos; if a batch fails, photos are retried alone so
        only the photo at fault ends as an error (its reason in place of a detection). When
        every photo fails alone too, the fault is not the photos' (a broken GPU, say): raise,
        so the task fails and is retried instead of recording good photos as errors."""
        good = [d for d in decoded if d.rgb is not None]
        try:
            found: list[Detection | None | str] = list(self.detector.detect([d.rgb for d in good]))
        except Exception as batch_error:  # noqa: BLE001 - isolate the bad photo below
            found, failures = [], 0
            for d in good:
                try:
                    found.extend(self.detector.detect([d.rgb]))
                except Exception as exc:  # noqa: BLE001 - recorded in the manifest
                    failures += 1
                    found.append(f"detection failed: {type(exc).__name__}: {exc}"[:200])
            if failures == len(good) > 1:
                raise batch_error
        it = iter(found)
        return [next(it) if d.rgb is not None else None for d in decoded]

    def _render(self, d: _Decoded, found: Detection | None | str) -> CropResult:
        photo, s = d.photo, self.settings
        cls = photo_class(photo.source)
        if d.rgb is None or isinstance(found, str):
            return CropResult(ManifestRow(photo.source, "", cls, ERROR, error=d.error or str(found)), None)
        h, w = d.rgb.shape[:2]
        box: Box | None = None
        if found is not None:
            box = padded_box(found.box, w, h, s.margins)
        status = DETECTED
        if box is None or box.empty:
            status, box = FALLBACK, fallback_box(w, h, (s.fallback_width, s.fallback_height))
        try:
            face = cut_face(d.rgb, box, (s.output_width, s.output_height), s.interpolation)
            data = encode_face(face, photo.output, s.jpeg_quality)
        except Exception as exc:  # noqa: BLE001 - recorded in the manifest
            return CropResult(ManifestRow(photo.source, "", cls, ERROR, error=f"cannot write face: {exc}"[:200]), None)
        row = ManifestRow(
            source=photo.source,
            output=photo.output,
            photo_class=cls,
            status=status,
            prob=None if found is None else found.prob,
            box=None if found is None else found.box,
            crop=tuple(box),
            faces=0 if found is None else found.faces,
        )
        return CropResult(row, data)

    def run(self, chunks: Iterable[Sequence[Photo]]) -> Iterator[list[CropResult]]:
        """Decode chunk i+1 and encode chunk i-1 in threads while chunk i is detected."""
        decoding: deque[list[Future[_Decoded]]] = deque()
        rendering: deque[list[Future[CropResult]]] = deque()
        chunks = iter(chunks)

        def start_decoding() -> None:
            chunk = next(chunks, None)
            if chunk is not None:
                decoding.append([self.pool.submit(self._decode, p) for p in chunk])

        start_decoding()
        while decoding:
            start_decoding()
            decoded = [f.result() for f in decoding.popleft()]
            detections = self._detect(decoded)
            rendering.append([self.pool.submit(self._render, d, f) for d, f in zip(decoded, detections)])
            if len(rendering) > 1:
                yield [f.result() for f in rendering.popleft()]
        while rendering:
            yield [f.result() for f in rendering.popleft()]

    def close(self) -> None:
        self.pool.shutdown(wait=True)


_WORKER: _Cropper | None = None


def _init_worker(settings: Settings, parent: int) -> None:
    import torch

    _die_with(parent)

    # First thing in a forked child: a parent that already ran torch ops leaves its OpenMP
    # pool unusable here, and one thread needs no pool. (cv2.setNumThreads would hang in the
    # same situation, so OpenCV keeps its default.)
    torch.set_num_threads(1)
    global _WORKER
    _WORKER = _Cropper(settings, threads=1)


def _die_with(parent: int) -> None:
    """Linux: this worker gets SIGKILL when the process that started it dies (Airflow killed
    the task, the OOM killer...). Otherwise it would wait forever on a queue that its
    siblings still hold open, keeping its memory."""
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


_PR_SET_PDEATHSIG = 1


def _run_chunk(chunk: Sequence[Photo]) -> tuple[int, list[CropResult]]:
    assert _WORKER is not None, "worker not initialised"
    return os.getpid(), [r for part in _WORKER.run([chunk]) for r in part]


@contextmanager
def _children_allowed() -> Iterator[None]:
    """Celery's prefork pool marks its workers daemonic, and Airflow's task process, forked
    from one, inherits the mark; multiprocessing then refuses to start children. The mark
    guards against orphans: ours are joined before this exits and die with their parent
    (_die_with), so lift it while the pool lives."""
    me = multiprocessing.current_process()
    was = me.daemon
    me.daemon = False
    try:
        yield
    finally:
        me.daemon = was


def crop_photos(
    photos: Iterable[Photo],
    settings: Settings,
    *,
    total: int | None = None,
    on_done: Callable[[list[CropResult]], None] | None = None,
    workers: int | None = None,
) -> Iterator[CropResult]:
    """Yield one CropResult per photo, in input order. Photos are taken from `photos` only as
    chunks are started (a few per worker), so a lazy iterable of downloads is held a window at
    a time, never whole; `total` sizes the worker pool when `photos` has no len(). `on_done`
    sees each finished chunk (for progress). Settings are checked first, so a bad value fails
    before any photo."""
    settings.check()
    n_workers = workers or plan_workers(settings, len(photos) if total is None else total)  # type: ignore[arg-type]
    for part in _run(_chunks(photos, settings), settings, n_workers):
        if on_done is not None:
            on_done(part)
        yield from part


def _run(chunks: Iterator[Sequence[Photo]], settings: Settings, n_workers: int) -> Iterator[list[CropResult]]:
    if n_workers <= 1:
        cropper = _Cropper(settings, threads=2)
        try:
            yield from cropper.run(chunks)
        finally:
            cropper.close()
        log.info("detection ran in this process (pid %d)", os.getpid())
        return
    # fork: children start in milliseconds with torch already imported; CUDA is never
    # initialised in this parent (the GPU path above runs in-process), so forking is safe.
    method = "fork" if resolve_device(settings.device) == "cpu" else "spawn"
    context = multiprocessing.get_context(method)
    pids: set[int] = set()
    with _children_allowed(), ProcessPoolExecutor(n_workers, mp_context=context, initializer=_init_worker,
                                                  initargs=(settings, os.getpid())) as pool:
        # Two chunks in flight per worker keeps them busy without holding every photo at once.
        pending = deque(pool.submit(_run_chunk, chunk) for chunk in islice(chunks, n_workers * 2))
        while pending:
            pid, part = pending.popleft().result()
            pids.add(pid)
            pending.extend(pool.submit(_run_chunk, chunk) for chunk in islice(chunks, 1))
            yield part
    log.info("detection ran in %d worker process(es) (pids %s)", len(pids), ", ".join(map(str, sorted(pids))))
