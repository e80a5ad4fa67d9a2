"""The `publish_csvs` task: the run's manifest, its CSVs pointed at the faces, stale faces
removed, and the index moved to this run, in that order (the index moves last, so a run that
fails midway leaves the next one trusting the last finished run)."""

from __future__ import annotations

import itertools
import logging
import shutil
from collections.abc import Iterator, Mapping
from typing import Any

from facecrop_ops.config.run import RunParams
from facecrop_ops.dataset import csv_rewrite, manifest
from facecrop_ops.dataset.codes import Reason, Status
from facecrop_ops.dataset.locations import face_rel, published_csv_name, split_images_root
from facecrop_ops.dataset.manifest import ManifestRow
from facecrop_ops.dataset.run_folder import IndexDoc, PlanDoc
from facecrop_ops.reporting import metrics
from facecrop_ops.s3io import S3Store
from facecrop_ops.spill import Spill
from facecrop_ops.tasks import tables
from facecrop_ops.tasks.context import RunContext, RunError, run_context
from facecrop_ops.tasks.plan import PUBLISHED_BY, csv_object

log = logging.getLogger(__name__)


def publish(params: Mapping[str, Any], run_id: str, store: S3Store) -> dict[str, Any]:
    """Merge the shard manifests and the reused rows, rewrite every CSV to the faces and
    publish it (rows whose photo was unreadable or not found go to rejects.csv instead),
    remove the faces of photos deleted since the last run, then point the index here. Rows
    stream through a table on the worker's disk; CSVs stream from S3 to local files, which are
    uploaded once every CSV has been rewritten."""
    ctx = run_context(params, run_id, store)
    rp, folder = ctx.params, ctx.folder
    plan = ctx.files.plan(folder)
    index = ctx.files.index()
    current = None if index is None else index.run_id
    if current not in (None, plan.index_run, run_id):
        raise RunError(f"{rp.dest.uri} moved on to run {current} after this run was planned: its reused faces and "
                       "deletions may no longer hold. Clear the whole run (every task) so it plans again")
    with Spill() as db:
        per_class = tables.load_run(ctx, db, plan)
        ctx.files.write_lines(folder.bucket, folder.manifest, (line for (line,) in db.rows("SELECT line FROM rows ORDER BY source")))
        published = _publish_csvs(ctx, db, plan)
        _remove_stale_faces(ctx, db, plan)
    ctx.files.write_index(IndexDoc(run_id, folder.manifest, rp.source.uri, rp.settings.fingerprint()))
    rates = {k: v.miss_rate for k, v in per_class.items()}
    return {"csvs": published, "miss_rate": rates, "photos": per_class[metrics.ALL].images, "reports": folder.uri,
            "report": folder.uri_of(folder.report)}


def _publish_csvs(ctx: RunContext, db: Spill, plan: PlanDoc) -> list[dict[str, Any]]:
    """Every CSV rewritten to a local file before any is uploaded: one that cannot be never
    leaves the others published from this run and itself from the last."""
    rp, store, folder = ctx.params, ctx.s3, ctx.folder
    rejected: list[csv_rewrite.Reject] = []  # the first ones, for the log
    rejected_by: dict[str, int] = {}
    rejects_path = db.folder / "rejects.csv"
    written = []
    with open(rejects_path, "w", encoding="utf-8", newline="") as rejects:
        rejects.write(",".join(csv_rewrite.REJECT_COLUMNS) + "\n")

        def on_reject(r: csv_rewrite.Reject) -> None:
            rejects.write(csv_rewrite.reject_line(r))
            rejected_by[r.csv] = rejected_by.get(r.csv, 0) + 1
            if len(rejected) < 10:
                rejected.append(r)

        for n, uri in enumerate(plan.csv_uris):
            csv_rewrite.check_destination(rp.dest, rp.csv_encoding, uri)
            bucket, key = csv_object(uri, rp)
            body = store.open(bucket, key)
            if body is None:
                raise RunError(f"CSV {uri} was deleted after the run was planned: restore it, or clear the run")
            text = csv_rewrite.decoded(tables.chunks(body), rp.csv_encoding, uri)
            first = next(text, "")
            bom = first.startswith(csv_rewrite.BOM)
            first = first[1:] if bom else first
            path = db.folder / f"{n}.csv"
            with open(path, "w", encoding=rp.csv_encoding, newline="", errors="strict") as out:
                if bom:
                    out.write(csv_rewrite.BOM)
                try:
                    kept = csv_rewrite.rewrite_lines(
                        csv_rewrite.lines(itertools.chain([first], text)), out, csv_name=uri, path_column=rp.path_column,
                        lookup=lambda source: tables.row_of(db, source), images_roots=plan.images_roots,
                        source=rp.source, dest=rp.dest, line_end=csv_rewrite.line_ending(first), on_reject=on_reject,
                        encoding=rp.csv_encoding)
                except UnicodeEncodeError as exc:
                    raise csv_rewrite.CsvError(
                        f"a rewritten path of {uri} has {exc.object[exc.start:exc.end]!r}, which {rp.csv_encoding} "
                        "cannot hold: choose a dest_uri in plain ASCII") from None
            written.append((uri, published_csv_name(key.rsplit("/", 1)[-1]), path, kept))
    published = []
    for uri, out_name, path, kept in written:
        with open(path, "rb") as data, store.writer(rp.dest.bucket, rp.dest.key(out_name), f"text/csv; charset={rp.csv_encoding}",
                                                    {PUBLISHED_BY: ctx.run_id}) as out:
            shutil.copyfileobj(data, out, tables.CHUNK)
        published.append({"uri": rp.dest.key_uri(out_name), "source": uri, "rows": kept, "rejected": rejected_by.get(uri, 0)})
        log.info("published %s: %d rows, %d rejected", rp.dest.key_uri(out_name), kept, rejected_by.get(uri, 0))
    with open(rejects_path, "rb") as data, store.writer(folder.bucket, folder.rejects, "text/csv") as out:
        shutil.copyfileobj(data, out, tables.CHUNK)
    for r in rejected:
        log.warning("rejected %s line %d (%s): %s", r.csv, r.line, r.path, r.reason)
    return published


def _remove_stale_faces(ctx: RunContext, db: Spill, plan: PlanDoc) -> None:
    """Remove the faces no published row points at any more: those of photos deleted from the
    bucket, of photos that became unreadable and of photos a reviewer left out. Nothing is
    listed: the candidates come from the rows, and deleting a face that is not there is no
    error. A key that is a photo of the dataset (under one of its images folders) is never
    removed, nor a face another row of this run writes."""
    rp = ctx.params

    def candidates() -> Iterator[ManifestRow]:
        yield from ctx.files.stream_rows(ctx.folder.bucket, ctx.folder.shards(plan.plan_id).gone)
        for (line,) in db.rows("SELECT line FROM rows WHERE status IN (?, ?) AND reason != ?",
                               (Status.ERROR, Status.EXCLUDED, Reason.REFUSED_KEY)):
            yield manifest.parse_line(line)

    removed, batch, example = 0, [], ""
    for row in candidates():
        split = split_images_root(row.source)
        if row.reason == Reason.REFUSED_KEY or split is None:
            continue
        face = face_rel(*split)
        if _is_a_photo(rp.dest.key(face), rp) or db.value("SELECT 1 FROM rows WHERE output = ?", (face,)):
            continue
        batch.append(rp.dest.key(face))
        example = example or rp.dest.key_uri(face)
        if len(batch) == 1000:
            ctx.s3.delete_many(rp.dest.bucket, batch)
            removed, batch = removed + len(batch), []
    ctx.s3.delete_many(rp.dest.bucket, batch)
    removed += len(batch)
    if removed:
        log.info("removed the faces, where there were any, of %d photo(s) deleted, now unreadable or left out, e.g. %s",
                 removed, example)


def _is_a_photo(key: str, rp: RunParams) -> bool:
    """Whether a key of the destination bucket lies under an images folder of the dataset."""
    return (rp.dest.bucket == rp.source.bucket and key.startswith(rp.source.prefix)
            and split_images_root(rp.source.rel(key)) is not None)
