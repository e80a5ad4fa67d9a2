"""What the Face review page reads and writes, for one facecrop_etl run, without the web layer.

Everything is found from the run itself: its source, destination and Airflow connection come
from the run's conf (with the DAG's defaults), never from the browser, so a logged-in user can
only look at photos a run of this DAG cropped, through that run's connection, and S3 is never
reachable by anyone not logged in (no credentials or presigned URLs leave the server).
"""

from __future__ import annotations

import itertools
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from facecrop_ops.config import deployment
from facecrop_ops.config.names import DAG_ID
from facecrop_ops.config.run import RunParams, parse
from facecrop_ops.dataset import corrections, review_items
from facecrop_ops.dataset.codes import Decision, Reason
from facecrop_ops.dataset.locations import split_images_root
from facecrop_ops.dataset.manifest import ManifestRow
from facecrop_ops.dataset.naming import is_photo_name
from facecrop_ops.dataset.review_items import ReviewIndex
from facecrop_ops.dataset.run_folder import RunFolder
from facecrop_ops.run_store import RunStore
from facecrop_ops.s3io import ObjectTooLarge, S3Store, client_for


class NotFound(LookupError):
    """No such run of the DAG, no manifest yet, or no such photo in the run."""


@dataclass(frozen=True)
class Run:
    run_id: str
    state: str
    run_after: str
    params: RunParams


def run_params(conf: Mapping[str, Any] | None) -> RunParams:
    """A run's params as its tasks saw them: its conf over the DAG's defaults."""
    values = dict(conf or {})
    if not values.get("source_uri") and deployment.SOURCE_URI:
        values["source_uri"] = deployment.SOURCE_URI
    return parse(values)


def runs(limit: int = 100, run_id: str | None = None) -> list[Run]:
    """The DAG's latest runs (or the one `run_id`) whose params parse, newest first, from
    Airflow's database."""
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from sqlalchemy import select

    out = []
    with create_session() as session:
        query = select(DagRun).where(DagRun.dag_id == DAG_ID)
        query = query.where(DagRun.run_id == run_id) if run_id else query.order_by(DagRun.run_after.desc()).limit(limit)
        for dr in session.scalars(query):
            try:
                params = run_params(dr.conf)
            except ValueError:
                continue  # a run refused for its params has nothing to review
            out.append(Run(dr.run_id, str(dr.state), dr.run_after.isoformat() if dr.run_after else "", params))
    return out


def find_run(run_id: str) -> Run:
    found = runs(run_id=run_id)
    if not found:
        raise NotFound(f"no run {_short(run_id)} of {DAG_ID}")
    return found[0]


_stores: dict[str, S3Store] = {}
_reviews: dict[str, tuple[float, Any]] = {}  # run folder URI -> (read at, _Review)
# Pages of an index as it was loaded: the review gate writes a run's review/ and publish writes
# it again (a cleared run that plans again too), so pages are cached under their index's load.
_pages: OrderedDict[tuple[str, int, int], list[dict[str, Any]]] = OrderedDict()
_loads = itertools.count()
_snapshots: dict[str, tuple[str, corrections.Snapshot]] = {}  # dest URI -> (its ETag, decisions' snapshot)
_decision_objects: OrderedDict[str, bytes] = OrderedDict()  # key -> bytes: decision objects never change
_lock = threading.Lock()
REVIEW_SECONDS = 30.0  # a run waiting at the gate gets its review items, then publish writes them again
REVIEWS_KEPT, PAGES_KEPT, DECISION_OBJECTS_KEPT = 64, 512, 20_000
COMPACT_AFTER = 256  # decisions listed after the snapshot beyond which a page load compacts them
STALE_SHOWN = 100
# Photos decoded at once for the page (rotated or TIFF photos are re-encoded upright): the API
# server's memory must not be at the mercy of how many reviewers open big photos at once.
_decoding = threading.BoundedSemaphore(2)


class TooLarge(ValueError):
    """A photo over the run's max_photo_megabytes or max_megapixels: not read, not decoded."""


class Changed(ValueError):
    """The photo changed since the run cropped it: a box drawn on it would not fit that crop."""


def store_for(run: Run) -> S3Store:
    """One client per connection for the server's life (boto3 clients are thread-safe). A
    connection id that names no connection is a StorageError (the page's 502)."""
    with _lock:
        if run.params.aws_conn_id not in _stores:
            _stores[run.params.aws_conn_id] = S3Store(client_for(run.params.aws_conn_id, 8), 8)
        return _stores[run.params.aws_conn_id]


def _files(run: Run, store: S3Store) -> RunStore:
    return RunStore(store, run.params.dest)


@dataclass(frozen=True)
class _Review:
    """What a run offers the page: its review items' index (pages read as shown), or for a run
    of an earlier version its items held, and its plan's stale decisions."""

    folder: RunFolder
    index: ReviewIndex
    pages: list[list[dict[str, Any]]] | None  # a run of an earlier version: its items, in memory
    stale: list[dict[str, str]]
    stale_count: int
    load: int = field(default_factory=lambda: next(_loads))  # which load of the index the pages belong to


def _review(run: Run, store: S3Store) -> _Review:
    files = _files(run, store)
    folder = files.run_for_reading(run.run_id)
    with _lock:
        cached = _reviews.get(folder.uri)
    if cached and time.monotonic() - cached[0] < REVIEW_SECONDS:
        return cached[1]
    plan = files.plan_if_exists(folder)
    if plan is None:
        raise NotFound(f"run {run.run_id} has not planned yet")
    index, pages = files.review_index(folder), None
    if index is None:
        rows = files.rows_if_exists(folder.bucket, folder.manifest)
        if rows is None:
            raise NotFound(f"run {run.run_id} is still cropping: its misses show once every shard is done")
        index, pages = _items_of(rows)  # a run of an earlier version (small): its manifest, read whole
    stale = [vars(c) for c in plan.stale_corrections]
    review = _Review(folder, index, pages, stale, len(stale) if plan.stale_count is None else plan.stale_count)
    with _lock:
        _reviews[folder.uri] = (time.monotonic(), review)
        while len(_reviews) > REVIEWS_KEPT:
            _reviews.pop(next(iter(_reviews)))
    return review


def _items_of(rows: list[ManifestRow]) -> tuple[ReviewIndex, list[list[dict[str, Any]]]]:
    least = {r.source for r in sorted((r for r in rows if review_items.is_candidate(r)),
                                      key=lambda r: (r.prob, r.source))[:review_items.LOW_CONFIDENCE]}
    shown = [review_items.item(r, review_items.kind_of(r) or review_items.LOW)
             for r in sorted(rows, key=lambda r: r.source) if review_items.kind_of(r) or r.source in least]
    index = ReviewIndex()
    pages = [shown[i : i + index.page_size] for i in range(0, len(shown), index.page_size)]
    for page in pages:
        index.add(review_items.page_info(page))
    return index, pages


def _page(run: Run, store: S3Store, review: _Review, number: int) -> list[dict[str, Any]]:
    if review.pages is not None:
        return review.pages[number]
    key = (review.folder.uri, review.load, number)
    with _lock:
        cached = _pages.get(key)
    if cached is None:
        cached = _files(run, store).review_page(review.folder, number)
        with _lock:
            _pages[key] = cached
            while len(_pages) > PAGES_KEPT:
                _pages.popitem(last=False)
    return cached


def _row(run: Run, store: S3Store, source: str) -> dict[str, Any]:
    """A photo the run shows for review (only those can be looked at or decided on), and a
    photo under an images folder (so review items someone edited in the bucket cannot make the
    server read labels or other objects)."""
    review = _review(run, store)
    number = review.index.find(source)
    entry = None if number is None else next((e for e in _page(run, store, review, number) if e["source"] == source), None)
    if entry is None or split_images_root(source) is None or not is_photo_name(source):
        raise NotFound(f"{_short(source)} is not a photo of run {run.run_id} shown for review")
    return entry


def _short(text: str, most: int = 120) -> str:
    """A value from the request, quoted in a message: never echoed whole."""
    return repr(text) if len(text) <= most else repr(text[:most]) + f"... ({len(text)} characters)"


def decisions(run: Run, store: S3Store) -> corrections.DecisionFold:
    """Every reviewer's decision on the destination, folded: the snapshot (read again only when
    it changed) and the objects saved after it; when those grow past COMPACT_AFTER, they are
    folded into a new snapshot."""
    files = _files(run, store)
    key = files.dest.dest.uri
    with _lock:
        cached = _snapshots.get(key)
    snapshot, etag = files.snapshot_if_changed(None if cached is None else cached[0])
    if snapshot is None:
        snapshot, etag = cached[1], cached[0]
    with _lock:
        objects = dict(_decision_objects)
    fold = files.decisions(snapshot, objects)
    if fold.decisions - snapshot.fold.decisions > COMPACT_AFTER:
        fold = files.compact(datetime.now(timezone.utc), objects)
        snapshot, etag = files.snapshot_if_changed(None)
    with _lock:
        _snapshots[key] = (etag, snapshot)
        _decision_objects.update(objects)
        while len(_decision_objects) > DECISION_OBJECTS_KEPT:
            _decision_objects.popitem(last=False)
    return fold


def items(run: Run, store: S3Store, page: int = 0, kind: str | None = None, cls: str | None = None,
          method: str | None = None) -> dict[str, Any]:
    """A page of what a reviewer looks at in a run (every miss and how it was cropped, every crop
    a reviewer made, the least confident detections), filtered by kind, class and method, with
    each photo's latest decision on the photo the run cropped; the decisions whose photo changed
    since the plan (stale), and the decision objects that could not be read. Reads the pages
    shown, never the manifest: the first screen costs the same at any size."""
    review = _review(run, store)
    fold = decisions(run, store)
    size = review.index.page_size
    wanted, skip, more = [], page * size, False
    pages = review.index.pages
    for number, info in enumerate(pages):
        if not info.matches(kind, cls, method):
            continue
        if kind is cls is method is None and skip >= info.count:
            skip -= info.count
            continue
        matching = [e for e in _page(run, store, review, number) if review_items.matches(e, kind, cls, method)]
        taken = matching[skip : skip + size - len(wanted)]
        rest_here = len(matching) > skip + len(taken)
        skip = max(0, skip - len(matching))
        wanted.extend(taken)
        if len(wanted) == size:  # more? the rest of this page, or a later page the index says matches
            more = rest_here or any(p.matches(kind, cls, method) for p in pages[number + 1 :])
            break
    return {
        "run_id": run.run_id, "source_uri": run.params.source.uri, "dest_uri": run.params.dest.uri,
        "margins": list(run.params.settings.margins), "page": page, "next": more, "page_size": size,
        "total": review.index.count, "kinds": review.index.kinds, "classes": review.index.classes,
        "methods": review.index.methods,
        "items": [_with_decision(e, fold.latest.get(e["source"])) for e in wanted],
        "stale": review.stale[:STALE_SHOWN], "stale_count": review.stale_count,
        "unreadable": {"count": fold.unreadable_count, "keys": [k for k, _ in fold.unreadable[:20]],
                       "note": fold.unreadable_note()},
    }


def _with_decision(entry: dict[str, Any], decision: corrections.Correction | None) -> dict[str, Any]:
    current = decision is not None and decision.etag == entry["etag"]  # a stale decision is listed apart, not on the tile
    return {**entry, "decision": None if not current else {"decision": decision.decision, "box": decision.box,
                                                           "reviewer": decision.reviewer, "time": decision.time}}


def _photo_bytes(run: Run, store: S3Store, entry: dict[str, Any]) -> bytes:
    """The photo the run cropped (its ETag), at most max_photo_megabytes read; Changed when
    the bucket holds another version now."""
    src, cap, source = run.params.source, run.params.settings.max_photo_megabytes * 1_000_000, entry["source"]
    try:
        data = store.get_if_exists(src.bucket, src.key(source), etag=entry["etag"] or None, max_bytes=cap)
    except ObjectTooLarge as exc:
        raise TooLarge(f"{source} is {exc.size / 1e6:.0f} MB, over the run's max_photo_megabytes "
                       f"{run.params.settings.max_photo_megabytes}: it is not shown") from None
    if data is None:
        raise Changed(f"{src.key_uri(source)} changed or was deleted since run {run.run_id} cropped it: "
                      "review the latest run")
    return data


def photo(run: Run, store: S3Store, source: str) -> tuple[bytes, str]:
    """A photo of the run as the pipeline sees it (upright), and its media type; only the run's
    photos, and none over the run's size limits."""
    from facecrop_ops.vision.imaging import BadPhoto, display_copy

    data = _photo_bytes(run, store, _row(run, store, source))
    with _decoding:
        try:
            return display_copy(data, run.params.settings.max_megapixels * 1_000_000)
        except BadPhoto as exc:
            if exc.reason == Reason.TOO_LARGE:
                raise TooLarge(str(exc)) from None
            raise NotFound(f"{source} cannot be shown: {exc}") from None


def record(run: Run, store: S3Store, source: str, decision: str, box: Any, reviewer: str) -> corrections.Correction:
    """Keep a reviewer's decision on a photo of the run, as an object of its own (two reviewers
    at once lose nothing). Everything is checked before anything is written: the decision, and
    for a box, that the photo is still the one the run cropped and the box lies inside it (its
    size read from its header, never decoded)."""
    entry = _row(run, store, source)
    now, nonce = datetime.now(timezone.utc).isoformat(timespec="milliseconds"), secrets.token_hex(4)
    made = corrections.make(source, entry["etag"], decision, box, reviewer, now, nonce)  # refused here before any read
    if made.decision == Decision.BOX:
        made = corrections.make(source, entry["etag"], decision, box, reviewer, now, nonce, _size(run, store, entry))
    corrections.parse(made.to_json(), made.id)  # what every reader will check: refuse now what they would skip
    _files(run, store).save_correction(made)
    return made


def _size(run: Run, store: S3Store, entry: dict[str, Any]) -> tuple[int, int]:
    """The photo's size as the pipeline and the browser see it (EXIF orientation applied)."""
    from facecrop_ops.vision.imaging import upright_size

    size = upright_size(_photo_bytes(run, store, entry))
    if size is None:
        raise corrections.CorrectionError(f"{entry['source']} cannot be cropped: it is not a readable photo")
    return size
