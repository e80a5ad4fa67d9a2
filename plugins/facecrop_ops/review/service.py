"""What the Face review page reads and writes, for one facecrop_etl run, without the web layer.

Everything is found from the run itself: its source, destination and Airflow connection come
from the run's conf (with the DAG's defaults), never from the browser, so a logged-in user can
only look at photos a run of this DAG cropped, through that run's connection, and S3 is never
reachable by anyone not logged in (no credentials or presigned URLs leave the server).
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from facecrop_ops.config import deployment
from facecrop_ops.config.names import DAG_ID
from facecrop_ops.config.run import RunParams, parse
from facecrop_ops.dataset import corrections
from facecrop_ops.dataset.codes import Decision, Method, Reason, Status
from facecrop_ops.dataset.locations import split_images_root
from facecrop_ops.dataset.manifest import ManifestRow
from facecrop_ops.dataset.naming import is_photo_name
from facecrop_ops.reporting.report import LOW_CONFIDENCE
from facecrop_ops.run_store import RunStore, ShardMissing
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
_manifests: dict[str, tuple[float, dict[str, ManifestRow]]] = {}  # run folder URI -> (read at, rows by photo)
_snapshots: dict[str, tuple[float, corrections.Snapshot]] = {}  # dest URI -> (read at, decisions' snapshot)
_decision_objects: OrderedDict[str, bytes] = OrderedDict()  # key -> bytes: decision objects never change
DECISION_OBJECTS_KEPT = 20_000
_lock = threading.Lock()
MANIFEST_SECONDS = 30.0  # a page loads dozens of photos of one run: read its manifest once for them
MANIFESTS_KEPT = 16
SNAPSHOT_SECONDS = 60.0  # any snapshot is right with the objects listed after it; fresher ones mean fewer
COMPACT_AFTER = 256  # decisions listed after the snapshot beyond which a page load compacts them
SHOWN = 400  # at most this many photos on the page: every miss of a big run would not load
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


def _manifest(run: Run, store: S3Store) -> dict[str, ManifestRow]:
    """The run's rows by photo: its manifest, or for a run that has not published yet (one
    waiting at the review gate), its plan's reused rows and every shard's."""
    files = _files(run, store)
    folder = files.run_for_reading(run.run_id)
    with _lock:
        cached = _manifests.get(folder.uri)
    if cached and time.monotonic() - cached[0] < MANIFEST_SECONDS:
        return cached[1]
    found = files.rows_if_exists(folder.bucket, folder.manifest)
    if found is None:
        plan = files.plan_if_exists(folder)
        if plan is None:
            raise NotFound(f"run {run.run_id} has not planned yet")
        try:
            found = files.run_rows(folder, plan)
        except ShardMissing:
            raise NotFound(f"run {run.run_id} is still cropping: its misses show once every shard is done") from None
    rows = {r.source: r for r in found}
    with _lock:
        _manifests[folder.uri] = (time.monotonic(), rows)
        while len(_manifests) > MANIFESTS_KEPT:
            _manifests.pop(next(iter(_manifests)))
    return rows


def _row(run: Run, store: S3Store, source: str) -> ManifestRow:
    """A photo of the run: in its manifest, and a photo under an images folder (so a manifest
    someone edited in the bucket cannot make the server read labels or other objects)."""
    row = _manifest(run, store).get(source)
    if row is None or split_images_root(source) is None or not is_photo_name(source):
        raise NotFound(f"{_short(source)} is not a photo of run {run.run_id}")
    return row


def _short(text: str, most: int = 120) -> str:
    """A value from the request, quoted in a message: never echoed whole."""
    return repr(text) if len(text) <= most else repr(text[:most]) + f"... ({len(text)} characters)"


def decisions(run: Run, store: S3Store) -> corrections.DecisionFold:
    """Every reviewer's decision on the destination, folded: a cached snapshot and the objects
    saved after it; when those grow past COMPACT_AFTER, they are folded into a new snapshot."""
    files = _files(run, store)
    key = files.dest.dest.uri
    with _lock:
        cached = _snapshots.get(key)
    if cached is None or time.monotonic() - cached[0] > SNAPSHOT_SECONDS:
        cached = (time.monotonic(), files.snapshot())
    with _lock:
        objects = dict(_decision_objects)
    fold = files.decisions(cached[1], objects)
    if fold.decisions - cached[1].fold.decisions > COMPACT_AFTER:
        fold = files.compact(datetime.now(timezone.utc), objects)
        cached = (time.monotonic(), files.snapshot())
    with _lock:
        _snapshots[key] = cached
        _decision_objects.update(objects)
        while len(_decision_objects) > DECISION_OBJECTS_KEPT:
            _decision_objects.popitem(last=False)
    return fold


def items(run: Run, store: S3Store) -> dict[str, Any]:
    """What a reviewer looks at in a run: every miss (and how it was cropped), every crop a
    reviewer made, and the least confident detections (at most SHOWN in all); with each
    photo's latest decision on the photo the run cropped, the decisions whose photo changed
    since (stale), and the decision objects that could not be read."""
    rows = _manifest(run, store)
    fold = decisions(run, store)
    latest = fold.latest
    detected = sorted((r for r in rows.values() if r.status == Status.DETECTED and r.method == Method.MTCNN and r.prob is not None),
                      key=lambda r: (r.prob, r.source))[:LOW_CONFIDENCE]
    chosen = sorted([r for r in rows.values() if r.status in (Status.FALLBACK, Status.EXCLUDED) or r.method == Method.MANUAL], key=lambda r: r.source)
    chosen = chosen[:SHOWN - len(detected)] + detected
    stale = [c for c in latest.values()
             if c.decision not in (Decision.ACCEPT, Decision.RESET) and c.source in rows and rows[c.source].etag != c.etag]
    return {
        "run_id": run.run_id, "source_uri": run.params.source.uri, "dest_uri": run.params.dest.uri,
        "margins": list(run.params.settings.margins),
        "items": [_item(r, latest.get(r.source)) for r in sorted(chosen, key=lambda r: r.source)],
        "more": sum(r.status in (Status.FALLBACK, Status.EXCLUDED) or r.method == Method.MANUAL for r in rows.values()) + len(detected) - len(chosen),
        "stale": [{"source": c.source, "decision": c.decision, "reviewer": c.reviewer, "time": c.time}
                  for c in stale[:STALE_SHOWN]],
        "stale_count": len(stale),
        "unreadable": {"count": fold.unreadable_count, "keys": [k for k, _ in fold.unreadable[:20]],
                       "note": fold.unreadable_note()},
    }


def _item(row: ManifestRow, decision: corrections.Correction | None) -> dict[str, Any]:
    kind = ("corrected" if row.method == Method.MANUAL else "missed" if row.status == Status.FALLBACK else "low confidence")
    current = decision is not None and decision.etag == row.etag  # a stale decision is listed apart, not on the tile
    return {
        "source": row.source, "class": row.photo_class, "status": row.status, "method": row.method, "kind": kind,
        "prob": row.prob, "box": row.box, "crop": row.crop, "etag": row.etag, "has_face": bool(row.output),
        "decision": None if not current else {"decision": decision.decision, "box": decision.box,
                                              "reviewer": decision.reviewer, "time": decision.time},
    }


def _photo_bytes(run: Run, store: S3Store, row: ManifestRow) -> bytes:
    """The photo the run cropped (its ETag), at most max_photo_megabytes read; Changed when
    the bucket holds another version now."""
    src, cap = run.params.source, run.params.settings.max_photo_megabytes * 1_000_000
    try:
        data = store.get_if_exists(src.bucket, src.key(row.source), etag=row.etag or None, max_bytes=cap)
    except ObjectTooLarge as exc:
        raise TooLarge(f"{row.source} is {exc.size / 1e6:.0f} MB, over the run's max_photo_megabytes "
                       f"{run.params.settings.max_photo_megabytes}: it is not shown") from None
    if data is None:
        raise Changed(f"{src.key_uri(row.source)} changed or was deleted since run {run.run_id} cropped it: "
                      "review the latest run")
    return data


def photo(run: Run, store: S3Store, source: str) -> tuple[bytes, str]:
    """A photo of the run as the pipeline sees it (upright), and its media type; only the run's
    photos, and none over the run's size limits."""
    from facecrop_ops.vision.imaging import BadPhoto, display_copy

    row = _row(run, store, source)
    data = _photo_bytes(run, store, row)
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
    row = _row(run, store, source)
    now, nonce = datetime.now(timezone.utc).isoformat(timespec="milliseconds"), secrets.token_hex(4)
    made = corrections.make(source, row.etag, decision, box, reviewer, now, nonce)  # refused here before any read
    if made.decision == Decision.BOX:
        made = corrections.make(source, row.etag, decision, box, reviewer, now, nonce, _size(run, store, row))
    corrections.parse(made.to_json(), made.id)  # what every reader will check: refuse now what they would skip
    _files(run, store).save_correction(made)
    return made


def _size(run: Run, store: S3Store, row: ManifestRow) -> tuple[int, int]:
    """The photo's size as the pipeline and the browser see it (EXIF orientation applied)."""
    from facecrop_ops.vision.imaging import upright_size

    size = upright_size(_photo_bytes(run, store, row))
    if size is None:
        raise corrections.CorrectionError(f"{row.source} cannot be cropped: it is not a readable photo")
    return size
