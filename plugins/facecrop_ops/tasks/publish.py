"""The `publish_csvs` task: the run's manifest, its CSVs pointed at the faces, stale faces
removed, and the index moved to this run, in that order (the index moves last, so a run that
fails midway leaves the next one trusting the last finished run)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from facecrop_ops.config.run import RunParams
from facecrop_ops.dataset import csv_rewrite
from facecrop_ops.dataset.codes import Reason, Status
from facecrop_ops.dataset.locations import face_rel, published_csv_name, split_images_root
from facecrop_ops.dataset.manifest import ManifestRow
from facecrop_ops.dataset.run_folder import IndexDoc
from facecrop_ops.reporting import metrics
from facecrop_ops.s3io import S3Store
from facecrop_ops.tasks.context import RunContext, RunError, run_context, run_rows
from facecrop_ops.tasks.plan import PUBLISHED_BY, csv_object

log = logging.getLogger(__name__)


def publish(params: Mapping[str, Any], run_id: str, store: S3Store) -> dict[str, Any]:
    """Merge the shard manifests and the reused rows, rewrite every CSV to the faces and
    publish it (rows whose photo was unreadable or not found go to rejects.csv instead),
    remove the faces of photos deleted since the last run, then point the index here."""
    ctx = run_context(params, run_id, store)
    rp, folder = ctx.params, ctx.folder
    plan = ctx.files.plan(folder)
    index = ctx.files.index()
    current = None if index is None else index.run_id
    if current not in (None, plan.index_run, run_id):
        raise RunError(f"{rp.dest.uri} moved on to run {current} after this run was planned: its reused faces and "
                       "deletions may no longer hold. Clear the whole run (every task) so it plans again")
    rows = run_rows(ctx, plan)
    ctx.files.write_rows(folder.bucket, folder.manifest, rows)
    by_source = {r.source: r for r in rows}
    rates = {k: v.miss_rate for k, v in metrics.per_class(rows).items()}
    # Every CSV is rewritten before any is written: one that cannot be never leaves the others
    # published from this run and itself from the last.
    rewritten, rejects = [], []
    for uri in plan.csv_uris:
        bucket, key = csv_object(uri, rp)
        text, bom = csv_rewrite.decode(store.get(bucket, key), rp.csv_encoding, uri)
        result = csv_rewrite.rewrite(text, csv_name=uri, path_column=rp.path_column, photos=by_source,
                                     images_roots=plan.images_roots, source=rp.source, dest=rp.dest)
        out_name = published_csv_name(key.rsplit("/", 1)[-1])
        rewritten.append((uri, out_name, csv_rewrite.encode(result.text, rp.csv_encoding, bom, uri), result))
        rejects.extend(result.rejects)
    published = []
    for uri, out_name, data, result in rewritten:
        store.put(rp.dest.bucket, rp.dest.key(out_name), data, f"text/csv; charset={rp.csv_encoding}", {PUBLISHED_BY: run_id})
        published.append({"uri": rp.dest.key_uri(out_name), "source": uri, "rows": result.kept, "rejected": len(result.rejects)})
        log.info("published %s: %d rows, %d rejected", rp.dest.key_uri(out_name), result.kept, len(result.rejects))
    store.put_text(folder.bucket, folder.rejects, csv_rewrite.rejects_csv(rejects))
    for r in rejects[:10]:
        log.warning("rejected %s line %d (%s): %s", r.csv, r.line, r.path, r.reason)
    gone = ctx.files.rows(folder.bucket, folder.shards(plan.plan_id).gone)
    _remove_stale_faces(ctx, plan.images_roots, rows, gone)
    ctx.files.write_index(IndexDoc(run_id, folder.manifest, rp.source.uri, rp.settings.fingerprint()))
    return {"csvs": published, "miss_rate": rates, "photos": len(rows), "reports": folder.uri,
            "report": folder.uri_of(folder.report)}


def _remove_stale_faces(ctx: RunContext, images_roots: list[str], rows: list[ManifestRow], gone: list[ManifestRow]) -> None:
    """Remove the faces no published row points at any more: those of photos deleted from the
    bucket, of photos that became unreadable and of photos a reviewer left out. Only faces that
    exist are counted, and a key that is a photo of the dataset (under one of its images
    folders) is never removed."""
    rp = ctx.params
    outputs = {r.output for r in rows}
    unused = (*gone, *(r for r in rows if r.status in (Status.ERROR, Status.EXCLUDED)))
    wanted = {face_rel(*split) for r in unused
              if r.reason != Reason.REFUSED_KEY and (split := split_images_root(r.source))} - outputs
    wanted = {k for k in wanted if not _is_a_photo(rp.dest.key(k), rp)}
    existing = {rp.dest.rel(o.key) for root in images_roots for o in ctx.s3.objects(rp.dest.child(face_rel(root, "")), "dest_uri")}
    stale = sorted(wanted & existing)
    ctx.s3.delete_many(rp.dest.bucket, [rp.dest.key(k) for k in stale])
    if stale:
        log.info("removed %d face(s) of photos deleted or now unreadable, e.g. %s", len(stale), rp.dest.key_uri(stale[0]))


def _is_a_photo(key: str, rp: RunParams) -> bool:
    """Whether a key of the destination bucket lies under an images folder of the dataset."""
    return (rp.dest.bucket == rp.source.bucket and key.startswith(rp.source.prefix)
            and split_images_root(rp.source.rel(key)) is not None)
