"""The shard processor: photos in, face files and one manifest row per photo out.

This is the one code path for the CLI and the DAG's detect task. Its speed comes from
four places, measured by benchmarks/bench_crop.py:

* batched detection (same-size photos together) with the exact fast MTCNN engine;
* on CPUs, one worker process per core with one torch thread each: these small networks
  scale better across processes than across torch's intra-op threads;
* JPEG decoding and encoding run in threads, one chunk ahead of and one chunk behind
  detection, so a process that feeds a GPU does not wait for them (CPU workers take one
  chunk at a time: with a worker per core, the cores are busy either way);
* a detecting process keeps the memory it frees (`_keep_freed_memory`), so each batch's
  large temporaries do not page-fault in again.

A photo that cannot be read, or fails on its own, becomes an `error` row; the batch goes on.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import stat
import sys
from collections import OrderedDict, defaultdict, deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, replace
from itertools import islice
from typing import NamedTuple

import numpy as np

from facecrop_ops.config.crop import Settings
from facecrop_ops.dataset.codes import Method, Reason, Status
from facecrop_ops.dataset.manifest import ManifestRow
from facecrop_ops.dataset.naming import REFERENCE_CLASSES, folder_of, photo_class, sittings
from facecrop_ops.vision.detector import DETECT_MAX_PIXELS, Detection, Detector, resolve_device
from facecrop_ops.vision.geometry import Box, FaceBox, fallback_box, padded_box, scale_box
from facecrop_ops.vision.imaging import BadPhoto, cut_face, decode_rgb, encode_face, header_size, pixel_count
from facecrop_ops.vision.rescue import (
    Found,
    Placement,
    accepted_placement,
    agreeing,
    auto_fallback_size,
    reference_box,
    template_sources,
    trusted_siblings,
)
from facecrop_ops.vision.second_detector import Rescue, rescue_box

log = logging.getLogger(__name__)

@dataclass(frozen=True)
class Photo:
    """One input: `source` is its name in the manifest, `output` the face's name; the bytes
    come from `data` or are read from `path` (in the worker, so they never cross processes)."""

    source: str
    output: str
    path: str | None = None
    data: bytes | None = None
    manual_box: FaceBox | None = None  # a reviewer's face box: cropped instead of what detection finds
    passenger: bool = False  # another part's reference photo: detected to serve its sitting's rescues, not cropped

    def read(self, max_bytes: int | None = None) -> bytes:
        """Its bytes; from a file, at most `max_bytes` (a photo over it, or a device, a FIFO or
        a folder named like a photo, is a BadPhoto: reading /dev/zero would never end)."""
        if self.data is not None:
            return self.data
        if self.path is None:
            raise BadPhoto("no data and no path given")
        size = _regular_file_size(self.path)
        limit = size if max_bytes is None else max_bytes
        if size > limit:
            raise BadPhoto(_too_large(size, limit), Reason.TOO_LARGE)
        with open(self.path, "rb") as f:
            data = f.read(limit + 1)
        if len(data) > limit:  # it grew meanwhile
            raise BadPhoto(_too_large(len(data), limit), Reason.TOO_LARGE)
        return data

    def pixels(self) -> int:
        """Its size from the file's header alone (0 when unknown): what decoding will hold."""
        if self.data is None and self.path is not None:
            try:
                _regular_file_size(self.path)
            except BadPhoto:
                return 0  # never opened: reading it may never end
        return pixel_count(self.data if self.data is not None else self.path)


def _regular_file_size(path: str) -> int:
    """The size of the file a path leads to (through links), refusing anything but a file."""
    try:
        st = os.stat(path)
    except OSError as exc:
        raise BadPhoto(f"cannot read: {exc.strerror or exc}", Reason.READ_FAILED) from None
    if not stat.S_ISREG(st.st_mode):
        raise BadPhoto("not a regular file (a device, FIFO, socket or folder named like a photo)", Reason.UNREADABLE)
    return st.st_size


def _too_large(size: int, limit: int) -> str:
    return (f"too large to read: {size / 1e6:.1f} MB, over max_photo_megabytes {limit / 1e6:g}: raise "
            "max_photo_megabytes to crop it")


@dataclass(frozen=True)
class CropResult:
    row: ManifestRow
    face: bytes | None  # the encoded face file; None for error rows
    pending: bool = False  # a centre crop waiting for the run's detections to size it (fallback_size auto)


@dataclass
class _Decoded:
    photo: Photo
    rgb: np.ndarray | None
    error: str = ""
    reason: Reason = Reason.NONE

    @property
    def size(self) -> tuple[int, int]:
        h, w = self.rgb.shape[:2]
        return w, h


class _Sitting(NamedTuple):
    """What a missed photo's sitting offers it (see _Cropper._sittings)."""

    box: FaceBox  # where the siblings put the face
    which: str  # whose face: normal, incorrect_mask or median
    note: str  # which reference photos were passed over, and why
    templates: list[tuple[Found, int]]


class _Failure(NamedTuple):
    """Why a readable photo has no crop (detection failed on it alone)."""

    message: str
    reason: Reason


@dataclass(frozen=True)
class _Choice:
    """The face box a crop is built on (None: the centre box) and what produced it."""

    box: FaceBox | None
    method: str
    prob: float | None = None
    faces: int = 0
    found: bool = False  # whether the first detection pass found a face (the row's status)
    reference: str = ""  # for a rescue: whose face it came from (the manifest's `reference`)


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
# 12-megapixel phone photo shares one with a few megapixels more at most, and a worker holds
# a few photos' pixels, not 48.
CHUNK_PIXELS = 16_000_000


def _chunks(photos: Iterable[Photo], settings: Settings) -> Iterator[list[Photo]]:
    """Chunks of at most `_chunk_size` photos and CHUNK_PIXELS; when a crop may depend on its
    person's other photos, a sitting is kept in one chunk up to SITTING_PART photos (it may
    then exceed both), and a bigger one comes in parts that each carry its reference photos."""
    size = _chunk_size(settings)
    chunk: list[Photo] = []
    pixels = 0
    for group in _groups(photos, settings.uses_siblings, SITTING_PARTS * size):
        n = sum(p.pixels() for p in group)
        if chunk and (len(chunk) + len(group) > size or pixels + n > CHUNK_PIXELS):
            yield chunk
            chunk, pixels = [], 0
        chunk.extend(group)
        pixels += n
    if chunk:
        yield chunk


SITTING_PARTS = 4  # a sitting of up to 4 chunks' photos is one group; a bigger one is cut in parts of that many
REFERENCES_KEPT = 64  # sittings whose reference photos are remembered for later parts or late photos


def _groups(photos: Iterable[Photo], whole_folders: bool, part: int) -> Iterator[list[Photo]]:
    """Photos one by one, or consecutive photos of one sitting together (whatever their file
    names: a stray `mask_old.jpg` is part of its folder). A sitting of more than `part` photos,
    or one whose photo arrives late (a download tried again), comes in several groups; each
    carries the sitting's reference photos seen so far (its `normal`, `incorrect_mask`: they
    come first in a sitting's order) as passengers, detected again to serve its rescues and
    not cropped twice. Only those few photos of recent sittings are held, never a sitting."""
    references: OrderedDict[str, dict[str, Photo]] = OrderedDict()

    def with_references(group: list[Photo], folder: str | None) -> list[Photo]:
        present = {p.source for p in group}
        extra = [] if folder is None else [replace(r, passenger=True)
                                           for r in references.get(folder, {}).values() if r.source not in present]
        return extra + group

    group: list[Photo] = []
    folder = None
    for photo in photos:
        this = folder_of(photo.source) if whole_folders else None
        if group and (this is None or this != folder or len(group) >= part):
            yield with_references(group, folder)
            group = []
        cls = photo_class(photo.source)
        if this is not None and cls in REFERENCE_CLASSES:
            kept = references.setdefault(this, {})
            kept.setdefault(cls, photo)
            references.move_to_end(this)
            while len(references) > REFERENCES_KEPT:
                references.popitem(last=False)
        group.append(photo)
        folder = this
    if group:
        yield with_references(group, folder)


class _Cropper:
    """What one process holds: the detector and a small thread pool for JPEG work."""

    def __init__(self, settings: Settings, threads: int) -> None:
        self.settings = settings
        self.detector = Detector(settings)
        self.relaxed = Detector(replace(settings, thresholds=settings.second_pass_thresholds)) if settings.second_pass else None
        self.second = None
        if settings.second_detector:
            from facecrop_ops.vision.yunet import YuNet

            self.second = YuNet()
        self.pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="facecrop-io")

    def _decode(self, photo: Photo) -> _Decoded:
        return _decode(photo, lambda: photo.read(self.settings.max_photo_megabytes * 1_000_000), self.settings)

    def _detect(self, decoded: list[_Decoded]) -> list[Detection | None | _Failure]:
        """Detections for the readable photos; if a batch fails, photos are retried alone so
        only the photo at fault ends as an error (its reason in place of a detection). When
        every photo fails alone too, the fault is not the photos' (a broken GPU, say): raise,
        so the task fails and is retried instead of recording good photos as errors."""
        good = [d for d in decoded if d.rgb is not None]
        try:
            found: list[Detection | None | _Failure] = list(self.detector.detect([d.rgb for d in good]))
        except Exception as batch_error:  # noqa: BLE001 - isolate the bad photo below
            found, failures = [], 0
            for d in good:
                try:
                    found.extend(self.detector.detect([d.rgb]))
                except Exception as exc:  # noqa: BLE001 - recorded in the manifest
                    failures += 1
                    found.append(_Failure(f"detection failed: {type(exc).__name__}: {exc}"[:200], Reason.DETECTION_FAILED))
            if failures == len(good) > 1:
                raise batch_error
        it = iter(found)
        return [next(it) if d.rgb is not None else None for d in decoded]

    def _choose(self, decoded: list[_Decoded], found: list[Detection | None | _Failure]) -> list[_Choice | _Failure | None]:
        """Each photo's face box: a reviewer's box when there is one; else its detection; for a
        miss, when those options are on (a chunk holds whole sittings then), the sitting's face
        found by template matching, the second detector's face, a guarded second pass, or a
        sibling's box; else the centre box. A face MTCNN found is never changed by a rescue. Errors stay as they are (a
        _Failure, or None for unreadable)."""
        choices: list[_Choice | _Failure | None] = [
            f if isinstance(f, _Failure) or d.rgb is None
            else _Choice(None, Method.CENTRE) if f is None else _Choice(f.box, Method.MTCNN, f.prob, f.faces, found=True)
            for d, f in zip(decoded, found)
        ]
        # A reviewer's box wins over everything (also where detection failed), and serves its
        # siblings' rescues as a detection would; the status still says what detection found.
        for i, d in enumerate(decoded):
            if d.photo.manual_box is not None and d.rgb is not None:
                x1, y1, x2, y2 = d.photo.manual_box
                if not (0 <= x1 < x2 <= d.size[0] and 0 <= y1 < y2 <= d.size[1]):
                    log.warning("%s: the reviewer's box %s leaves the %dx%d photo; not applied", d.photo.source,
                                d.photo.manual_box, *d.size)
                    continue
                detection = choices[i] if isinstance(choices[i], _Choice) else _Choice(None, Method.CENTRE)
                choices[i] = replace(detection, box=d.photo.manual_box, method=Method.MANUAL)
        if self.settings.rescues:
            self._rescue(decoded, choices)
        return choices

    def _sittings(self, decoded: list[_Decoded], choices: list[_Choice | _Failure | None]) -> dict[int, _Sitting]:
        """For each miss in a sitting: where its siblings put the face, whose face that is, and
        the siblings whose upper face may be matched onto it."""
        folders: dict[str, list[int]] = defaultdict(list)
        for i, d in enumerate(decoded):
            folder = folder_of(d.photo.source)
            if folder is not None and isinstance(choices[i], _Choice):
                folders[folder].append(i)
        out: dict[int, _Sitting] = {}
        for members in folders.values():
            if not sittings(decoded[i].photo.source for i in members):
                continue  # a folder of strangers: nobody lends a face
            detected = [(Found(photo_class(decoded[i].photo.source), choices[i].box, decoded[i].size), i)
                        for i in members if choices[i].method in (Method.MTCNN, Method.MANUAL)]
            siblings, passed_over = trusted_siblings([f for f, _ in detected])
            note = f" ({', '.join(passed_over)} disagrees with the sitting's other photos)" if passed_over else ""
            templates = [(f, i) for t in template_sources(siblings) for f, i in detected if f is t]
            for i in members:
                if choices[i].method == Method.CENTRE:
                    ref = reference_box(siblings, decoded[i].size)
                    if ref is not None:
                        out[i] = _Sitting(ref[0], ref[1], note, templates)
        return out

    def _rescue(self, decoded: list[_Decoded], choices: list[_Choice | _Failure | None]) -> None:
        """For each miss, as the options say and in this order: the sitting's face by template
        matching, the second detector's face (also where there is no sitting), a guarded second
        pass, a sibling's box. Passengers (another part's reference photos) are not rescued."""
        s = self.settings
        sitting = self._sittings(decoded, choices) if s.uses_siblings else {}
        misses = [i for i, c in enumerate(choices)
                  if isinstance(c, _Choice) and c.method == Method.CENTRE and not decoded[i].photo.passenger]
        for i in misses:
            ref = sitting.get(i)
            if ref is not None and s.template_match and ref.templates:
                placed = self._match(decoded, i, ref.templates)
                if placed is not None:
                    choices[i] = _Choice(placed.box, Method.TEMPLATE, placed.score, reference=placed.photo_class + ref.note)
                    continue
            if self.second is not None:
                found = self._second_look(decoded[i])
                if found is not None:
                    choices[i] = _Choice(found.box, Method.YUNET, found.score)
                    continue
            if ref is None:
                continue
            if self.relaxed is not None:
                try:
                    (candidates,) = self.relaxed.candidates([decoded[i].rgb])
                except Exception:  # noqa: BLE001 - a failed second look leaves the first answer
                    candidates = []
                hit = agreeing(candidates, ref.box, s.second_pass_min_iou)
                if hit is not None:
                    choices[i] = _Choice(hit[0], Method.SECOND_PASS, hit[1], reference=ref.which + ref.note)
                    continue
            if s.fallback == "sibling":
                choices[i] = _Choice(ref.box, Method.SIBLING, reference=ref.which + ref.note)

    def _second_look(self, d: _Decoded) -> Rescue | None:
        """The second detector's face on a missed photo, when it passes the rules."""
        try:
            return rescue_box(self.second.faces(d.rgb), d.size)
        except Exception:  # noqa: BLE001 - a failed second look leaves the other rescues to try
            log.warning("the second detector failed on %s", d.photo.source, exc_info=True)
            return None

    def _match(self, decoded: list[_Decoded], i: int, templates: list[tuple[Found, int]]) -> Placement | None:
        """The sitting's face on missed photo i: each template sibling's upper face matched
        near where that sibling's box lies, until `accepted_placement` takes one."""
        from facecrop_ops.vision.matching import grey, match_face

        target = decoded[i]
        placements: list[Placement] = []
        try:
            photo = grey(target.rgb)
            for sibling, j in templates:
                reference, box = decoded[j].rgb, sibling.box
                if sibling.size != target.size:  # same framing, another size: bring it to this one's
                    import cv2

                    reference = cv2.resize(reference, target.size, interpolation=cv2.INTER_AREA)
                    box = scale_box(box, sibling.size, target.size)
                found = match_face(photo, reference, box, box)
                if found is not None:
                    placements.append(Placement(sibling.photo_class, found.box, found.score))
                    accepted = accepted_placement(placements, self.settings.template_min_score)
                    if accepted is not None:
                        return accepted
        except Exception:  # noqa: BLE001 - a failed match leaves the other rescues to try
            log.warning("template matching failed on %s", target.photo.source, exc_info=True)
        return None

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
            choices = self._choose(decoded, self._detect(decoded))
            rendering.append([self.pool.submit(_render, d, c, self.settings) for d, c in zip(decoded, choices)
                              if not d.photo.passenger])
            if len(rendering) > 1:
                yield [f.result() for f in rendering.popleft()]
        while rendering:
            yield [f.result() for f in rendering.popleft()]

    def close(self) -> None:
        self.pool.shutdown(wait=True)


def _render(d: _Decoded, choice: _Choice | _Failure | None, s: Settings) -> CropResult:
    """The manifest row and face file of one photo. `status` says what the first detection
    found (a miss is `fallback`); `method` how the crop was made."""
    photo = d.photo
    cls = photo_class(photo.source)
    if d.rgb is None or not isinstance(choice, _Choice):
        failure = choice if isinstance(choice, _Failure) else _Failure(d.error, d.reason)
        return CropResult(ManifestRow(photo.source, "", cls, Status.ERROR, error=failure.message, reason=failure.reason), None)
    w, h = d.size
    method = choice.method
    box: Box | None = None if choice.box is None else padded_box(choice.box, w, h, s.margins)
    if box is None or box.empty:
        method, box = Method.CENTRE, fallback_box(w, h, (s.fallback_width, s.fallback_height))
    row = ManifestRow(
        source=photo.source,
        output=photo.output,
        photo_class=cls,
        status=Status.DETECTED if choice.found and method in (Method.MTCNN, Method.MANUAL) else Status.FALLBACK,
        prob=choice.prob,
        box=choice.box,
        crop=None,
        faces=choice.faces,
        method=method,
        reference=choice.reference if method == choice.method else "",
    )
    if method == Method.CENTRE and s.fallback_size == "auto":
        return CropResult(row, None, pending=True)
    try:
        face = cut_face(d.rgb, box, (s.output_width, s.output_height), s.interpolation)
        data = encode_face(face, photo.output, s.jpeg_quality)
    except Exception as exc:  # noqa: BLE001 - recorded in the manifest
        return CropResult(ManifestRow(photo.source, "", cls, Status.ERROR, error=f"cannot write face: {exc}"[:200],
                                      reason=Reason.WRITE_FAILED), None)
    return CropResult(replace(row, crop=tuple(box)), data)


_WORKER: _Cropper | None = None


def _init_worker(settings: Settings, parent: int, processes: int) -> None:
    import torch

    _die_with(parent)

    # First thing in a forked child: a parent that already ran torch ops leaves its OpenMP
    # pool unusable here, and one thread needs no pool. (cv2.setNumThreads would hang in the
    # same situation, so OpenCV keeps its default.)
    torch.set_num_threads(1)
    _keep_freed_memory()
    _set_budget(processes)
    global _WORKER
    _WORKER = _Cropper(settings, threads=1)


def _keep_freed_memory() -> None:
    """glibc: keep freed memory in this process instead of handing it back to the kernel.
    Every batch allocates the same large temporaries (integral tables, pyramid levels, network
    activations: 10-20 MB each for 384 x 512 photos); by default each comes fresh from mmap and
    is paid for again in page faults: about 15 % of the whole run's time on 384 x 512 photos.
    Called in worker processes, and in the task or CLI process itself when it detects alone:
    those exit when the run ends, so the kept memory (at most the peak) goes with them."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    libc = ctypes.CDLL(None)
    if not hasattr(libc, "mallopt"):  # not glibc
        return
    # glibc before 2.35 refuses an mmap threshold above 32 MB (and says so by returning 0);
    # the trim threshold is only raised with it, or glibc's own adaptive one would be lost.
    for keep in (_KEEP_BYTES, _KEEP_BYTES_OLD_GLIBC):
        if libc.mallopt(_M_MMAP_THRESHOLD, keep):
            libc.mallopt(_M_TRIM_THRESHOLD, keep)
            return


_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_KEEP_BYTES, _KEEP_BYTES_OLD_GLIBC = 256 << 20, 32 << 20


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
    on_done: Callable[[list[CropResult]], None] | None = None,
    workers: int | None = None,
    reread: Callable[[Photo], bytes] | None = None,
) -> Iterator[CropResult]:
    """Yield one CropResult per photo, in input order. Photos are taken from `photos` only as
    chunks are started (a few per worker), so a lazy iterable of downloads is held a window at
    a time, never whole (give `workers` then: it has no len() to plan them by). `on_done`
    sees each finished chunk (for progress). Settings are checked first, so a bad value fails
    before any photo.

    With fallback_size "auto", centre crops wait until every photo is detected (the mean
    padded crop sizes the centre box) and come last; their photos are read again then, with
    `reread` (from S3, say) or from the Photo itself."""
    settings.check()
    n_workers = workers or plan_workers(settings, len(photos))  # type: ignore[arg-type]
    deferring = settings.fallback_size == "auto"
    in_flight: dict[str, Photo] = {}
    pending: list[tuple[CropResult, Photo]] = []
    detected: list[Box] = []

    def tracked() -> Iterator[Photo]:
        for photo in photos:
            if deferring:  # what is needed to read it again, its bytes only when there is no other way
                in_flight[photo.source] = photo if reread is None and photo.path is None else replace(photo, data=None)
            yield photo

    for part in _run(_chunks(tracked(), settings), settings, n_workers):
        done = []
        for result in part:
            photo = in_flight.pop(result.row.source, None)
            if result.pending:
                pending.append((result, photo))
                continue
            done.append(result)
            if result.row.status == Status.DETECTED:
                detected.append(Box(*result.row.crop))
        if on_done is not None:
            on_done(done)
        yield from done
    if pending:
        width, height = auto_fallback_size(detected) or (settings.fallback_width, settings.fallback_height)
        log.info("%d centre crop(s) sized %dx%d: 1.2 x the mean padded crop of %d detection(s)",
                 len(pending), width, height, len(detected))
        sized = replace(settings, fallback_width=width, fallback_height=height, fallback_size="fixed")
        done = [_finish_centre(result, photo, sized, reread) for result, photo in pending]
        if on_done is not None:
            on_done(done)
        yield from done


def _finish_centre(result: CropResult, photo: Photo, sized: Settings, reread: Callable[[Photo], bytes] | None) -> CropResult:
    """A deferred centre crop, now that its size is known."""
    cap = sized.max_photo_megabytes * 1_000_000
    decoded = _decode(photo, (lambda: reread(photo)) if reread is not None else (lambda: photo.read(cap)), sized)
    row = result.row
    return _render(decoded, _Choice(row.box, Method.CENTRE, row.prob, row.faces), sized)


def _decode(photo: Photo, read: Callable[[], bytes], settings: Settings) -> _Decoded:
    """Its pixels, or the reason it has none (unreadable, too small to detect a face in)."""
    try:
        data = read()
        _within_budget(data, settings)
        rgb = decode_rgb(data, settings.max_megapixels * 1_000_000)
    except BadPhoto as exc:
        return _Decoded(photo, None, str(exc), exc.reason)
    except OSError as exc:
        return _Decoded(photo, None, f"cannot read: {exc.strerror or exc}", Reason.READ_FAILED)
    h, w = rgb.shape[:2]
    if min(h, w) < settings.min_face_size:
        return _Decoded(photo, None, f"too small to detect in ({w}x{h} px < min_face_size {settings.min_face_size})",
                        Reason.TOO_SMALL)
    return _Decoded(photo, rgb)


# What one photo holds while it is decoded and detected, per pixel: OpenCV's BGR and our RGB
# copy (6 bytes), and MTCNN's pyramid and activations (11 bytes: a 300-megapixel header asked
# for 1.8 GB to decode and 3.35 GB more to detect). Detection sees at most DETECT_MAX_PIXELS.
DECODE_BYTES_PER_PIXEL, DETECT_BYTES_PER_PIXEL = 6, 11
MEMORY_SHARE = 0.5  # of a detection process's part of the worker's memory, for one photo
_budget: int | None = None  # bytes one photo may take in this process; set where detection starts


def _set_budget(processes: int) -> None:
    global _budget
    available = available_memory()
    _budget = None if available is None else int(available / max(1, processes) * MEMORY_SHARE)


def available_memory() -> int | None:
    """What this worker may use: its cgroup's limit (a container, a Kubernetes pod) when it has
    one, else the memory the kernel says is available. None when neither can be read."""
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            text = open(path).read().strip()
        except OSError:
            continue
        if text.isdigit() and int(text) < 1 << 60:
            return int(text)
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _within_budget(data: bytes, settings: Settings) -> None:
    """Refuse, before decoding, a photo whose pixels would take more memory than this process
    may give one photo (max_megapixels bounds it too, but up to 1,000 megapixels: more than most
    workers have)."""
    size = header_size(data)
    if _budget is None or size is None:
        return
    pixels = size[0] * size[1]
    if pixels > settings.max_megapixels * 1_000_000:
        return  # refused by its param, whose message names the fix a user chose
    need = pixels * DECODE_BYTES_PER_PIXEL + min(pixels, DETECT_MAX_PIXELS) * DETECT_BYTES_PER_PIXEL
    if need > _budget:
        raise BadPhoto(f"too large for this worker: {size[0]}x{size[1]} px needs ~{need / 1e9:.1f} GB to decode and "
                       f"detect, over the {_budget / 1e9:.1f} GB a detection process here may give one photo: give "
                       "the worker more memory or fewer detection processes (FACECROP_CPU_WORKERS), or lower "
                       "max_megapixels to refuse such photos up front", Reason.TOO_LARGE)


def _run(chunks: Iterator[Sequence[Photo]], settings: Settings, n_workers: int) -> Iterator[list[CropResult]]:
    if n_workers <= 1:
        _keep_freed_memory()
        _set_budget(1)
        # On a GPU this one process feeds the device: decoding and encoding get the cores.
        threads = min(8, os.cpu_count() or 2) if resolve_device(settings.device) != "cpu" else 2
        cropper = _Cropper(settings, threads=threads)
        try:
            yield from cropper.run(chunks)
        finally:
            cropper.close()
        log.info("detection ran in this process (pid %d)", os.getpid())
        return
    # fork: children start in milliseconds with torch already imported; CUDA is never
    # initialised in this parent (the GPU path above runs in-process), so forking is safe.
    method = "fork" if resolve_device(settings.device) == "cpu" else "spawn"
    if method == "fork":
        # Imported here, once, so that every worker inherits facenet-pytorch and torchvision
        # instead of importing them itself: about 1 s of CPU per worker, per task.
        from facecrop_ops.vision import mtcnn_fast  # noqa: F401
    context = multiprocessing.get_context(method)
    pids: set[int] = set()
    with _children_allowed(), ProcessPoolExecutor(n_workers, mp_context=context, initializer=_init_worker,
                                                  initargs=(settings, os.getpid(), n_workers)) as pool:
        # Fork every worker now, before the first chunk is pulled: pulling it may start download
        # threads, and a fork while they hold locks can deadlock the child.
        pool.submit(os.getpid).result()
        # Two chunks in flight per worker keeps them busy without holding every photo at once.
        pending = deque(pool.submit(_run_chunk, chunk) for chunk in islice(chunks, n_workers * 2))
        while pending:
            pid, part = pending.popleft().result()
            pids.add(pid)
            pending.extend(pool.submit(_run_chunk, chunk) for chunk in islice(chunks, 1))
            yield part
    log.info("detection ran in %d worker process(es) (pids %s)", len(pids), ", ".join(map(str, sorted(pids))))
