"""The `plan` task: everything a run can decide before any photo moves.

Check params, list the dataset, check the CSVs, refuse photos whose face could not be written
safely, apply reviewers' decisions, decide which photos the last run's faces still serve, and
write the shard lists of the others. Errors a user can fix stop the run here.
"""

from __future__ import annotations

import csv
import hashlib
import itertools
import json
import logging
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from facecrop_ops import spill
from facecrop_ops.config.run import ParamsError, RunParams
from facecrop_ops.dataset import corrections, csv_rewrite, incremental, manifest
from facecrop_ops.dataset.codes import Decision, Method, Reason, Status
from facecrop_ops.dataset.locations import face_key_problem, face_rel, parse_s3_uri, published_csv_name
from facecrop_ops.dataset.manifest import ManifestRow
from facecrop_ops.dataset.naming import UNLABELED, photo_class
from facecrop_ops.dataset.planning import FACE, HIDDEN, NOT_PHOTO, pack, shard_target, source_csvs
from facecrop_ops.dataset.run_folder import IndexDoc, ManualBox, PlanDoc, ShardList, ShardRef, StaleCorrection
from facecrop_ops.reporting import metrics
from facecrop_ops.s3io import S3Store
from facecrop_ops.spill import Spill
from facecrop_ops.tasks import tables
from facecrop_ops.tasks.context import RunContext, RunError, run_context

log = logging.getLogger(__name__)

PUBLISHED_BY = "facecrop-run"  # user metadata (x-amz-meta-facecrop-run) on every CSV this pipeline publishes
REFUSED = "refused: "  # how the message of a photo the plan refused begins
STALE_LISTED = 100  # stale corrections plan.json, the report and the page name (they count them all)


def plan(params: Mapping[str, Any], run_id: str, store: S3Store) -> list[dict[str, Any]]:
    """Plan the run; return one small dict per shard for the mapped detect task (none when
    nothing changed). The listing, the last run's manifest and the destination's faces go to
    tables on the worker's disk: memory holds a folder at a time, whatever the dataset's size."""
    ctx = run_context(params, run_id, store)
    with Spill() as db:
        return _plan(ctx, db)


def _plan(ctx: RunContext, db: Spill) -> list[dict[str, Any]]:
    rp, run_id = ctx.params, ctx.run_id
    listing = tables.load_listing(db, ctx.s3, rp.source)
    if not listing.photos:
        raise RunError(f"no photos under {rp.source.uri}<split>/images/: check source_uri")
    _check_limits(rp, [cls for (cls,) in db.rows("SELECT DISTINCT cls FROM photos")])
    _check_spellings(db)
    csv_uris = list(rp.csv_uris) or [rp.source.key_uri(name) for name in source_csvs(listing.csvs)]
    index = ctx.files.index()
    _check_csvs(ctx, csv_uris, index)
    aside = _left_out(ctx, db)
    decided = ctx.files.compact(datetime.now(timezone.utc))
    photo_of = {source: row for source in decided.latest
                if (row := next(db.rows("SELECT etag, aside IS NOT NULL FROM photos WHERE source = ?", (source,)), None))}
    etag_of = {source: etag for source, (etag, _) in photo_of.items()}
    active, stale = corrections.applicable(decided.latest, etag_of)  # stale ones reported, set aside or not
    active = {k: c for k, c in active.items() if not photo_of[k][1]}  # refused or too large: not cropped at all
    manual = {k: c for k, c in active.items() if c.decision == Decision.BOX}
    excluded = {k: c for k, c in active.items() if c.decision == Decision.NO_FACE}
    for k, c in excluded.items():
        row = ManifestRow(k, "", photo_class(k), Status.EXCLUDED, error=f"marked 'no usable face' by {c.reviewer} at {c.time}",
                          method=Method.MANUAL, etag=etag_of[k], correction=c.id, reason=Reason.NO_USABLE_FACE)
        db.execute("UPDATE photos SET aside = ? WHERE source = ?", (manifest.line(row), k))
    images_roots = sorted(listing.images_roots)
    last = _last_run(ctx, db, index, images_roots)
    counts = _decide(db, rp, last, {k: c.id for k, c in manual.items()})
    plan_id, shards = _shards(db, rp, manual, lambda plan_id, i, shard: ctx.files.write_shard_list(ctx.folder, plan_id, i, shard))
    files = ctx.folder.shards(plan_id)
    for kind, key in (("reused", files.reused), ("gone", files.gone), ("refused", files.refused)):
        ctx.files.write_lines(ctx.folder.bucket, key,
                              (line for (line,) in db.rows("SELECT line FROM decided WHERE kind = ? ORDER BY source", (kind,))))
    ctx.files.write_plan(ctx.folder, PlanDoc(
        run_id=run_id, plan_id=plan_id, source_uri=rp.source.uri, dest_uri=rp.dest.uri, csv_uris=csv_uris,
        images_roots=images_roots, photos=listing.photos, shards=len(shards), to_crop=counts["todo"],
        reused=counts["reused"], gone=counts["gone"], index_run=last.run_id, refused=aside["refused"],
        too_large=aside["too_large"], corrected=len(manual) + len(excluded),
        stale_corrections=[StaleCorrection(c.source, c.decision, c.reviewer, c.time) for c in stale[:STALE_LISTED]],
        stale_count=len(stale),
        unreadable_decisions=({"count": decided.unreadable_count, "keys": [k for k, _ in decided.unreadable[:100]]}
                              if decided.unreadable_count else {}),
        skipped_hidden=listing.skipped[HIDDEN], skipped_not_photos=listing.skipped[NOT_PHOTO],
        skipped_faces=listing.skipped[FACE], skipped_count=dict(listing.skipped_count),
        settings=rp.settings.as_dict(),
    ))
    log.info("%d photos under %s in %d images folder(s) (%s); CSVs: %s", listing.photos, rp.source.uri,
             len(images_roots), ", ".join(images_roots), ", ".join(csv_uris) or "none")
    log.info("%d reused from run %s, %d to crop in %d shard(s) of up to %d (plan %s), %d deleted since", counts["reused"],
             last.run_id or "-", counts["todo"], len(shards), max(shards, default=0), plan_id, counts["gone"])
    if manual or excluded:
        log.info("reviewers' corrections: %d face box(es), %d photo(s) with no usable face", len(manual), len(excluded))
    if decided.unreadable_count:
        log.warning("%s", decided.unreadable_note())
    for c in stale[:10]:
        log.warning("stale correction: %s changed since %s reviewed it (%s at %s); not applied: review it again",
                    rp.source.key_uri(c.source), c.reviewer, c.decision, c.time)
    if len(stale) > 10:
        log.warning("... and %d more stale corrections (plan.json lists %d)", len(stale) - 10, min(len(stale), STALE_LISTED))
    for what, kind in (("hidden file", HIDDEN), ("file without a photo extension", NOT_PHOTO),
                       ("face under a 'faces' folder (not a photo)", FACE)):
        if listing.skipped_count[kind]:
            log.warning("skipping %d %s(s), e.g. %s", listing.skipped_count[kind], what, listing.skipped[kind][0])
    for source, line in db.rows("SELECT source, aside FROM photos WHERE aside IS NOT NULL ORDER BY source LIMIT 10"):
        log.warning("not cropping %s: %s", rp.source.key_uri(source), manifest.parse_line(line).error)
    log.info("run reports: %s", ctx.folder.uri)
    return [ShardRef(i, size, plan_id).to_xcom() for i, size in enumerate(shards)]


def _left_out(ctx: RunContext, db: Spill) -> dict[str, int]:
    """Mark the photos the plan does not crop (their row in `aside`): a face key that could not
    be written safely, a file over max_photo_megabytes (never downloaded)."""
    rp = ctx.params
    cap = rp.settings.max_photo_megabytes
    counts = {"refused": 0, "too_large": 0}
    db.execute("CREATE TABLE aside_new (source TEXT PRIMARY KEY, line TEXT)")

    def rows() -> Iterator[tuple[str, str]]:
        for source, etag, size in db.rows("SELECT source, etag, size FROM photos"):
            problem = face_key_problem(source, rp.dest)
            if problem is not None:
                row = ManifestRow(source, "", photo_class(source), Status.ERROR, error=REFUSED + problem, etag=etag,
                                  reason=Reason.REFUSED_KEY)
                counts["refused"] += 1
            elif size > cap * 1_000_000:
                row = ManifestRow(source, "", photo_class(source), Status.ERROR, etag=etag, reason=Reason.TOO_LARGE,
                                  error=f"too large to download: {size / 1e6:.0f} MB, over max_photo_megabytes {cap}: "
                                        "raise max_photo_megabytes to crop it")
                counts["too_large"] += 1
            else:
                continue
            yield source, manifest.line(row)

    db.insert("aside_new", rows())
    db.execute("UPDATE photos SET aside = (SELECT line FROM aside_new WHERE aside_new.source = photos.source) "
               "WHERE source IN (SELECT source FROM aside_new)")
    return counts


def _check_limits(rp: RunParams, classes: list[str]) -> None:
    """miss_rate_limits may only name classes this dataset has (or `all`): a typo must not
    wait until the run has cropped everything to be found."""
    known = {*classes, metrics.ALL}
    unknown = sorted(set(rp.miss_rate_limits) - known)
    if unknown:
        raise ParamsError(f"bad params: miss_rate_limits names {', '.join(map(repr, unknown))}, no class of this dataset "
                          f"(its classes: {', '.join(sorted(known))})")


def _check_spellings(db: Spill) -> None:
    """No two photos may differ only by Unicode normalisation (a name written in NFC by Excel or
    Windows and in NFD by macOS): their faces would merge on a macOS disk and a CSV row could not
    tell them apart."""
    twins = list(db.rows("SELECT MIN(source), MAX(source), COUNT(*) OVER () FROM photos GROUP BY nfc "
                         "HAVING COUNT(*) > 1 ORDER BY 1 LIMIT 1"))
    if twins:
        a, b, pairs = twins[0]
        more = f" ({pairs} such names)" if pairs > 1 else ""
        raise RunError(f"photos {a!r} and {b!r} have the same name in different Unicode normalisations (NFC and NFD: "
                       f"Windows and macOS spell Korean and accented names so){more}: their faces and CSV rows cannot be "
                       "told apart. Keep one spelling: rename or remove one of each pair")


def csv_object(uri_or_name: str, rp: RunParams) -> tuple[str, str]:
    """(bucket, key) of a CSV given as a URI, or as a name under the dataset root."""
    loc = parse_s3_uri(uri_or_name if uri_or_name.startswith("s3://") else rp.source.key_uri(uri_or_name), "csv")
    return loc.bucket, loc.prefix.rstrip("/")


def _check_csvs(ctx: RunContext, csv_uris: list[str], index: IndexDoc | None) -> None:
    """Each CSV exists, is text in csv_encoding with one path column, and publishes to a name
    of its own where no object of someone else's lies: a published CSV never overwrites an
    object this pipeline did not write. A CSV is read as it streams: never held whole."""
    rp, store = ctx.params, ctx.s3
    published: dict[str, str] = {}
    for uri in csv_uris:
        bucket, key = csv_object(uri, rp)
        body = store.open(bucket, key)
        if body is None:
            raise RunError(f"CSV {uri} does not exist: fix csv_uris (or leave it empty for every *.csv under source_uri)")
        lines = csv_rewrite.lines(csv_rewrite.decoded(tables.chunks(body), rp.csv_encoding, uri))
        first = next(lines, "").lstrip(csv_rewrite.BOM)
        header = next(csv.reader(itertools.chain([first], lines)), [])  # a quoted header cell may span lines
        for _ in lines:  # every byte must be text in csv_encoding: the publish reads it all
            pass
        if not header:
            raise RunError(f"CSV {uri} is empty (0 bytes): fix the file, or list the CSVs to rewrite in csv_uris")
        csv_rewrite.check_path_column(header, rp.path_column, uri)
        name = published_csv_name(key.rsplit("/", 1)[-1])
        if name in published:
            raise RunError(f"CSVs {published[name]} and {uri} would both be published as {rp.dest.key_uri(name)}: "
                           "rewrite them in separate runs (csv_uris) or rename one")
        published[name] = uri
        meta = store.metadata(rp.dest.bucket, rp.dest.key(name))
        legacy = index is not None and index.legacy
        if meta is not None and PUBLISHED_BY not in meta and not legacy:
            raise RunError(f"{rp.dest.key_uri(name)} exists and was not published by facecrop, so rewriting {uri} would "
                           "overwrite it: move that object away, or choose another dest_uri")


@dataclass(frozen=True)
class LastRun:
    """What the run the index points at leaves this one (its rows went to the table `previous`,
    the destination's faces to `faces` when they may be reused)."""

    run_id: str | None  # whenever there is an index: publish checks that no other run moved it meanwhile
    reuse: bool


def _last_run(ctx: RunContext, db: Spill, index: IndexDoc | None, images_roots: list[str]) -> LastRun:
    """Reuse needs the same source, the same face-shaping settings, no full recrop, and centre
    boxes not sized by the run's own detections (fallback_size auto). The last run's rows serve
    even without reuse, to find the photos deleted since."""
    rp = ctx.params
    db.execute(tables.PREVIOUS)
    db.execute("CREATE TABLE faces (key TEXT PRIMARY KEY, etag TEXT)")
    rows = None if index is None or index.source_uri != rp.source.uri else ctx.files.open_rows(rp.dest.bucket, index.manifest)
    if rows is None:
        return LastRun(None if index is None else index.run_id, False)
    tables.load_rows(db, "previous", rows)
    db.execute("CREATE INDEX previous_folder ON previous (folder, source)")
    reuse = (not rp.full_recrop and rp.settings.fallback_size != "auto"
             and index.settings_fingerprint == rp.settings.fingerprint())
    if reuse:
        db.insert("faces", ((rp.dest.rel(o.key), o.etag) for root in images_roots
                            for o in ctx.s3.iter_objects(rp.dest.child(face_rel(root, "")), "dest_uri")))
    return LastRun(index.run_id, reuse)


def _decide(db: Spill, rp: RunParams, last: LastRun, manual: Mapping[str, str]) -> dict[str, int]:
    """incremental.decide_group over every folder, streamed from the tables in folder order;
    what it decides goes to the tables `decided` (reused, gone and refused rows) and `todo`."""
    db.execute("CREATE TABLE decided (kind TEXT, source TEXT, line TEXT)")
    db.execute("CREATE TABLE todo (source TEXT PRIMARY KEY, folder TEXT, parent TEXT, cls TEXT, rank INTEGER, etag TEXT)")
    whole = rp.settings.uses_siblings
    counts = {"reused": 0, "todo": 0, "gone": 0}
    query = """
        SELECT p.source, p.etag, p.aside, v.line, f.etag, p.folder, p.parent, p.cls, p.rank
          FROM photos p LEFT JOIN previous v ON v.source = p.source LEFT JOIN faces f ON f.key = v.output
        UNION ALL
        SELECT v.source, NULL, NULL, v.line, NULL, v.folder, NULL, NULL, NULL
          FROM previous v WHERE NOT EXISTS (SELECT 1 FROM photos p WHERE p.source = v.source)
        ORDER BY 6, 1"""
    todo_rows: list[tuple] = []
    decided_rows: list[tuple] = []

    def flush_group(group: list[tuple]) -> None:
        entries = [incremental.Entry(
            source, None if aside else etag, None if line is None else manifest.parse_line(line), face_etag,
            manual.get(source, ""), None if aside is None else manifest.parse_line(aside))
            for source, etag, aside, line, face_etag, *_ in group]
        decision = incremental.decide_group(entries, reuse=last.reuse, whole_folders=whole)
        info = {g[0]: g for g in group}
        for row in decision.reused:
            decided_rows.append(("reused", row.source, manifest.line(row)))
        for row in decision.gone:
            decided_rows.append(("gone", row.source, manifest.line(row)))
        for source, _, aside, *_ in group:
            if aside is not None:
                decided_rows.append(("refused", source, aside))
        for source in decision.todo:
            _, etag, _, _, _, folder, parent, cls, rank = info[source]
            todo_rows.append((source, folder, parent, cls, rank, etag))
        counts["reused"] += len(decision.reused)
        counts["gone"] += len(decision.gone)
        counts["todo"] += len(decision.todo)

    def groups() -> Iterator[list[tuple]]:
        group: list[tuple] = []
        for row in db.rows(query):
            if group and not (whole and row[5] and row[5] == group[0][5]):
                yield group
                group = []
            group.append(row)
        if group:
            yield group

    for group in groups():
        flush_group(group)
        if len(todo_rows) >= spill.BATCH or len(decided_rows) >= spill.BATCH:
            db.insert("todo", todo_rows)
            db.insert("decided", decided_rows)
            todo_rows, decided_rows = [], []
    db.insert("todo", todo_rows)
    db.insert("decided", decided_rows)
    db.execute("CREATE INDEX decided_kind ON decided (kind, source)")
    return counts



def _shards(db: Spill, rp: RunParams, manual: Mapping[str, corrections.Correction],
            write: Callable[[str, int, ShardList], None]) -> tuple[str, list[int]]:
    """Pack the photos to crop into shards as planning.make_shards does (its rules: shard_group,
    pack), write each shard's list, and return the plan's id and the shards' sizes. The id
    hashes what the shards' results depend on: where, every setting of the crop (not only those
    that shape faces: a photo refused over max_megapixels may be cropped under another), each
    photo's key and content (ETag) in shard order, and the reviewers' boxes applied."""
    todo = db.value("SELECT COUNT(*) FROM todo")
    if not todo:
        return _plan_hash(rp, [], []), []
    target = shard_target(todo, rp.photos_per_shard, rp.max_shards)
    whole = rp.settings.uses_siblings
    ordered = f"""
        WITH t AS (SELECT source, folder, parent, rank, etag,
                          {"MAX(cls != '" + UNLABELED + "') OVER (PARTITION BY folder)" if whole else "0"} AS sitting,
                          ROW_NUMBER() OVER (PARTITION BY parent ORDER BY source) - 1 AS nth FROM todo),
             g AS (SELECT source, rank, etag, sitting AND folder != '' AS whole,
                          CASE WHEN sitting AND folder != '' THEN 's:' || folder
                               ELSE 'f:' || parent || '#' || (nth / {rp.photos_per_shard}) END AS grp FROM t)
        SELECT source, etag, grp, MIN(source) OVER (PARTITION BY grp) AS first, whole, rank FROM g
        ORDER BY first, CASE WHEN whole THEN rank ELSE 0 END, source"""
    sizes: list[int] = []
    digest = hashlib.sha256()
    last_group = None
    for source, etag, grp, *_ in db.rows(ordered):
        if grp != last_group:
            sizes.append(0)
            last_group = grp
        sizes[-1] += 1
        c = manual.get(source)
        digest.update(json.dumps([source, etag, c.id if c else ""]).encode() + b"\n")
    shards = pack(sizes, target, rp.max_shards)
    plan_id = _plan_hash(rp, shards, [digest.hexdigest()])
    rows = db.rows(ordered)
    for i, size in enumerate(shards):
        keys, etags, reviewed = [], [], {}
        for source, etag, *_ in itertools.islice(rows, size):
            keys.append(source)
            etags.append(etag)
            if source in manual:
                reviewed[source] = ManualBox(manual[source].box, manual[source].id)
        write(plan_id, i, ShardList(keys, etags, reviewed))
    return plan_id, shards


def _plan_hash(rp: RunParams, shards: list[int], photos: list[str]) -> str:
    settings = {k: v for k, v in rp.settings.as_dict().items() if k not in ("device", "workers")}
    what = {"source": rp.source.uri, "dest": rp.dest.uri, "settings": settings, "shards": shards, "photos": photos}
    return hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()[:16]
