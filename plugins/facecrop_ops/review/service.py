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
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from facecrop_ops.config import deployment
from facecrop_ops.config.names import DAG_ID
from facecrop_ops.config.run import RunParams, parse
from facecrop_ops.dataset import corrections
from facecrop_ops.dataset.codes import Decision, Method, Status
from facecrop_ops.dataset.locations import split_images_root
from facecrop_ops.dataset.manifest import ManifestRow
from facecrop_ops.dataset.naming import is_photo_name
from facecrop_ops.reporting.report import LOW_CONFIDENCE
from facecrop_ops.run_store import RunStore
from facecrop_ops.s3io import S3Store, client_for


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
        raise NotFound(f"no run {run_id!r} of {DAG_ID}")
    return found[0]


_stores: dict[str, S3Store] = {}
_manifests: dict[str, tuple[float, dict[str, ManifestRow]]] = {}  # run folder URI -> (read at, rows by photo)
_lock = threading.Lock()
MANIFEST_SECONDS = 30.0  # a page loads dozens of photos of one run: read its manifest once for them
MANIFESTS_KEPT = 16
SHOWN = 400  # at most this many photos on the page: every miss of a big run would not load


def store_for(run: Run) -> S3Store:
    """One client per connection for the server's life (boto3 clients are thread-safe)."""
    with _lock:
        if run.params.aws_conn_id not in _stores:
            _stores[run.params.aws_conn_id] = S3Store(client_for(run.params.aws_conn_id, 8), 8)
        return _stores[run.params.aws_conn_id]


def _manifest(run: Run, store: S3Store) -> dict[str, ManifestRow]:
    files = RunStore(store, run.params.dest)
    folder = files.run(run.run_id)
    with _lock:
        cached = _manifests.get(folder.uri)
    if cached and time.monotonic() - cached[0] < MANIFEST_SECONDS:
        return cached[1]
    found = files.rows_if_exists(folder.bucket, folder.manifest)
    if found is None:
        raise NotFound(f"run {run.run_id} has no manifest yet: it publishes one when its crops are done")
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
        raise NotFound(f"{source!r} is not a photo of run {run.run_id}")
    return row


def items(run: Run, store: S3Store) -> dict[str, Any]:
    """What a reviewer looks at in a run: every miss (and how it was cropped), every crop a
    reviewer made, and the least confident detections (at most SHOWN in all); with each
    photo's latest decision, and the decisions whose photo changed since (stale)."""
    rows = _manifest(run, store)
    latest = corrections.latest(RunStore(store, run.params.dest).corrections())
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
        "stale": [{"source": c.source, "decision": c.decision, "reviewer": c.reviewer, "time": c.time} for c in stale],
    }


def _item(row: ManifestRow, decision: corrections.Correction | None) -> dict[str, Any]:
    kind = ("corrected" if row.method == Method.MANUAL else "missed" if row.status == Status.FALLBACK else "low confidence")
    return {
        "source": row.source, "class": row.photo_class, "status": row.status, "method": row.method, "kind": kind,
        "prob": row.prob, "box": row.box, "crop": row.crop, "etag": row.etag, "has_face": bool(row.output),
        "decision": None if decision is None else {"decision": decision.decision, "box": decision.box,
                                                   "reviewer": decision.reviewer, "time": decision.time},
    }


def photo(run: Run, store: S3Store, source: str) -> bytes:
    """A photo of the run as the source bucket holds it; only the run's photos."""
    _row(run, store, source)
    data = store.get_if_exists(run.params.source.bucket, run.params.source.key(source))
    if data is None:
        raise NotFound(f"{run.params.source.key_uri(source)} is gone")
    return data


def record(run: Run, store: S3Store, source: str, decision: str, box: Any, reviewer: str) -> corrections.Correction:
    """Keep a reviewer's decision on a photo of the run: an object of its own (two reviewers at
    once lose nothing), then corrections.csv rebuilt from all of them."""
    row = _row(run, store, source)
    size = _size(run, store, source) if decision == Decision.BOX else None
    now = datetime.now(timezone.utc).isoformat(timespec="milliseconds")
    made = corrections.make(source, row.etag, decision, box, reviewer, now, secrets.token_hex(4), size)
    files = RunStore(store, run.params.dest)
    files.save_correction(made)
    files.rebuild_corrections_csv()
    return made


def _size(run: Run, store: S3Store, source: str) -> tuple[int, int]:
    """The photo's size as the pipeline and the browser see it (EXIF orientation applied)."""
    from facecrop_ops.vision.imaging import BadPhoto, decode_rgb

    try:
        h, w = decode_rgb(photo(run, store, source), run.params.settings.max_megapixels * 1_000_000).shape[:2]
    except BadPhoto as exc:
        raise corrections.CorrectionError(f"{source} cannot be cropped: {exc}") from None
    return w, h
