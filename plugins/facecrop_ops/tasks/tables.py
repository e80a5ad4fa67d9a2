"""The control plane's tables on the worker's disk (`spill.Spill`): the dataset's listing, the
last run's manifest and the destination's faces, joined and sorted by SQLite so `plan` and
`publish` hold a folder or a page at a time, never the dataset.

Every decision stays in the pure modules (`dataset.planning`, `dataset.incremental`,
`dataset.csv_rewrite`): this module only moves rows between S3, the tables and them.
"""

from __future__ import annotations

import unicodedata
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from facecrop_ops import spill
from facecrop_ops.dataset import manifest, review_items
from facecrop_ops.dataset.codes import Method, Reason, Status
from facecrop_ops.dataset.locations import FACES, IMAGES, S3Location
from facecrop_ops.dataset.manifest import ManifestRow
from facecrop_ops.dataset.naming import REFERENCE_CLASSES, folder_of, photo_class, split_name
from facecrop_ops.dataset.planning import CSV, FACE, HIDDEN, NOT_PHOTO, PHOTO, classify_key
from facecrop_ops.dataset.run_folder import FACECROP_DIR, PlanDoc
from facecrop_ops.reporting import metrics
from facecrop_ops.run_store import ShardMissing
from facecrop_ops.s3io import S3Object, S3Store
from facecrop_ops.spill import Spill
from facecrop_ops.tasks.context import RunContext, RunError

SAMPLES = 100  # keys of each kind of skipped file plan.json names (it counts them all)
WIDE = 200  # a folder above the images folders with more sub-folders than this is listed whole


def walk(store: S3Store, source: S3Location) -> Iterator[S3Object]:
    """The dataset's objects that matter: the files directly under its root (CSVs) and every key
    under each images folder, found by walking the folders above them one level at a time. The
    faces published beside the photos and facecrop's own folder are never listed (a default
    destination would otherwise have the listing hold every face and every past run's files)."""
    prefixes, objects = store.folders(source, "source_uri")
    yield from objects
    todo = deque(prefixes)
    while todo:
        prefix = todo.popleft()
        name = prefix.rstrip("/").rsplit("/", 1)[-1]
        if name in (FACES, FACECROP_DIR):
            continue
        loc = S3Location(source.bucket, prefix)
        if name == IMAGES:
            yield from store.iter_objects(loc, "source_uri")
            continue
        subs, _ = store.folders(loc, "source_uri")  # files beside the images folders are no photos
        if len(subs) > WIDE:
            yield from (o for o in store.iter_objects(loc, "source_uri") if _walked(o.key[len(prefix):]))
        else:
            todo.extend(subs)


def _walked(rest: str) -> bool:
    """Whether the folder-by-folder walk would reach a key (given below the listed prefix): it
    lies under an images folder with no faces or facecrop folder above that. A folder listed
    whole yields exactly what walking it would."""
    for part in rest.split("/")[:-1]:
        if part == IMAGES:
            return True
        if part in (FACES, FACECROP_DIR):
            return False
    return False


@dataclass
class Listing:
    """What the listing held besides the photos (which went to the table `photos`)."""

    photos: int = 0
    csvs: list[str] = field(default_factory=list)  # directly under the root, not hidden
    images_roots: set[str] = field(default_factory=set)
    skipped: dict[str, list[str]] = field(default_factory=lambda: {HIDDEN: [], NOT_PHOTO: [], FACE: []})  # samples
    skipped_count: dict[str, int] = field(default_factory=lambda: {HIDDEN: 0, NOT_PHOTO: 0, FACE: 0})


PHOTOS = """CREATE TABLE photos (source TEXT PRIMARY KEY, etag TEXT, size INTEGER, nfc TEXT, folder TEXT, parent TEXT,
                                cls TEXT, rank INTEGER, aside TEXT)"""


def load_listing(db: Spill, store: S3Store, source: S3Location) -> Listing:
    """The dataset's photos into `photos`; the rest counted and sampled."""
    db.execute(PHOTOS)
    out = Listing()

    def rows() -> Iterator[tuple]:
        for o in walk(store, source):
            rel = source.rel(o.key)
            kind = classify_key(rel)
            if kind is None:
                continue
            what, root = kind
            if what == CSV:
                out.csvs.append(rel)
                continue
            if root and FACES not in root.split("/"):
                out.images_roots.add(root)
            if what != PHOTO:
                out.skipped_count[what] += 1
                if len(out.skipped[what]) < SAMPLES:
                    out.skipped[what].append(rel)
                continue
            cls = photo_class(rel)
            yield (rel, o.etag, o.size, unicodedata.normalize("NFC", rel), folder_of(rel) or "",
                   split_name(rel)[0], cls,
                   REFERENCE_CLASSES.index(cls) if cls in REFERENCE_CLASSES else len(REFERENCE_CLASSES), None)

    out.photos = db.insert("photos", rows())
    db.execute("CREATE INDEX photos_nfc ON photos (nfc)")
    for kind in out.skipped.values():
        kind.sort()
    out.csvs.sort()
    return out


PREVIOUS = "CREATE TABLE previous (source TEXT PRIMARY KEY, line TEXT, output TEXT, folder TEXT)"


def load_rows(db: Spill, table: str, rows: Iterator[ManifestRow]) -> int:
    """Manifest rows into a table (source, line, output, folder), each line as this version
    writes it."""
    return db.insert(table, ((r.source, manifest.line(r), r.output, folder_of(r.source) or "") for r in rows))



CHUNK = 1 << 20  # bytes of a CSV or manifest read at a time


def chunks(stream: Any, size: int = CHUNK) -> Iterator[bytes]:
    while data := stream.read(size):
        yield data


ROWS = """CREATE TABLE rows (source TEXT PRIMARY KEY, nfc TEXT, line TEXT, status TEXT, reason TEXT, error TEXT,
                             cls TEXT, output TEXT, method TEXT)"""


def load_run_rows(db: Spill, parts: Iterator[Iterator[ManifestRow]]) -> Iterator[ManifestRow]:
    """Every row of a run into `rows` as it streams past, and on to the caller (metrics, the
    review items); each part is a file of rows (reused, refused, one per shard)."""
    db.execute(ROWS)
    batch: list[tuple] = []
    for part in parts:
        for row in part:
            batch.append((row.source, unicodedata.normalize("NFC", row.source), manifest.line(row), str(row.status),
                          str(row.reason), row.error, row.photo_class, row.output, str(row.method)))
            if len(batch) >= spill.BATCH:
                db.insert("rows", batch)
                batch = []
            yield row
    db.insert("rows", batch)
    db.execute("CREATE INDEX rows_nfc ON rows (nfc)")
    db.execute("CREATE INDEX rows_output ON rows (output)")


def row_of(db: Spill, key: str) -> ManifestRow | None:
    """The run's row for a photo key, in the other Unicode normalisation too (the plan refused
    photos whose keys differ only so): what a CSV row is matched with."""
    found = db.execute("SELECT source, status, reason, error, cls, output FROM rows WHERE source = ?", (key,)).fetchone()
    if found is None:
        found = db.execute("SELECT source, status, reason, error, cls, output FROM rows WHERE nfc = ?",
                           (unicodedata.normalize("NFC", key),)).fetchone()
    if found is None:
        return None
    source, status, reason, error, cls, output = found
    return ManifestRow(source, output, cls, Status(status), error=error, reason=Reason(reason))


def load_run(ctx: RunContext, db: Spill, plan: PlanDoc) -> dict[str, metrics.ClassMetrics]:
    """Every photo's row into the table `rows`, counted per class, and the run's review items
    written (what Face review shows): one pass over the rows."""
    try:
        parts = ctx.files.run_row_parts(ctx.folder, plan)
    except ShardMissing as exc:
        raise RunError(str(exc)) from None
    least: list[tuple[float, str]] = []  # the least confident detections so far (prob, photo)
    counts = metrics.per_class(_watch(load_run_rows(db, iter(parts)), least))
    shown = {source for _, source in sorted(least)[:review_items.LOW_CONFIDENCE]}

    def items() -> Iterator[dict[str, Any]]:
        for (line,) in db.rows("SELECT line FROM rows WHERE method = ? OR status IN (?, ?) OR source IN "
                               f"({', '.join('?' * len(shown))}) ORDER BY source",
                               (Method.MANUAL, Status.FALLBACK, Status.EXCLUDED, *shown)):
            row = manifest.parse_line(line)
            yield review_items.item(row, review_items.kind_of(row) or review_items.LOW)

    ctx.files.write_review(ctx.folder, items())
    return counts


def _watch(rows: Iterator[ManifestRow], least: list[tuple[float, str]]) -> Iterator[ManifestRow]:
    """Rows passing by, the least confident detections among them kept (a few at a time)."""
    for row in rows:
        if review_items.is_candidate(row):
            least.append((row.prob, row.source))
            if len(least) > 4 * review_items.LOW_CONFIDENCE:
                least.sort()
                del least[review_items.LOW_CONFIDENCE:]
        yield row
