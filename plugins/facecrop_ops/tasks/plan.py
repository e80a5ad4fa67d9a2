"""The `plan` task: everything a run can decide before any photo moves.

Check params, list the dataset, check the CSVs, refuse photos whose face could not be written
safely, apply reviewers' decisions, decide which photos the last run's faces still serve, and
write the shard lists of the others. Errors a user can fix stop the run here.
"""

from __future__ import annotations

import hashlib
import json
import logging
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from facecrop_ops.config.run import ParamsError, RunParams
from facecrop_ops.dataset import corrections, csv_rewrite, incremental
from facecrop_ops.dataset.codes import Decision, Method, Reason, Status
from facecrop_ops.dataset.locations import face_key_problem, face_rel, parse_s3_uri, published_csv_name
from facecrop_ops.dataset.manifest import ManifestRow
from facecrop_ops.dataset.naming import photo_class
from facecrop_ops.dataset.planning import classify, make_shards
from facecrop_ops.dataset.run_folder import IndexDoc, ManualBox, PlanDoc, ShardList, ShardRef, StaleCorrection
from facecrop_ops.reporting import metrics
from facecrop_ops.tasks.context import RunContext, RunError, run_context

log = logging.getLogger(__name__)

PUBLISHED_BY = "facecrop-run"  # user metadata (x-amz-meta-facecrop-run) on every CSV this pipeline publishes
REFUSED = "refused: "  # how the message of a photo the plan refused begins
STALE_LISTED = 100  # stale corrections plan.json, the report and the page name (they count them all)


def plan(params: Mapping[str, Any], run_id: str, store: Any) -> list[dict[str, Any]]:
    """Plan the run; return one small dict per shard for the mapped detect task (none when
    nothing changed)."""
    ctx = run_context(params, run_id, store)
    rp = ctx.params
    listed = store.objects(rp.source, "source_uri")
    etags = {rp.source.rel(o.key): o.etag for o in listed}
    sizes = {rp.source.rel(o.key): o.size for o in listed}
    listing = classify(etags)
    if not listing.photos:
        raise RunError(f"no photos under {rp.source.uri}<split>/images/: check source_uri")
    _check_limits(rp, listing.photos)
    _check_spellings(listing.photos)
    csv_uris = list(rp.csv_uris) or [rp.source.key_uri(name) for name in listing.csvs]
    index = ctx.files.index()
    _check_csvs(ctx, csv_uris, index)
    refused = {k: problem for k in listing.photos if (problem := face_key_problem(k, rp.dest))}
    cap = rp.settings.max_photo_megabytes
    too_large = {k: f"too large to download: {sizes[k] / 1e6:.0f} MB, over max_photo_megabytes {cap}: raise "
                    "max_photo_megabytes to crop it" for k in listing.photos if sizes[k] > cap * 1_000_000 and k not in refused}
    decided = ctx.files.compact(datetime.now(timezone.utc))
    active, stale = corrections.applicable(decided.latest, etags)
    excluded = {k: c for k, c in active.items() if c.decision == Decision.NO_FACE and k not in refused and k not in too_large}
    manual = {k: c for k, c in active.items() if c.decision == Decision.BOX and k not in refused and k not in too_large}
    left_out = {
        **{k: ManifestRow(k, "", photo_class(k), Status.ERROR, error=REFUSED + problem, etag=etags[k],
                          reason=Reason.REFUSED_KEY) for k, problem in refused.items()},
        **{k: ManifestRow(k, "", photo_class(k), Status.ERROR, error=message, etag=etags[k], reason=Reason.TOO_LARGE)
           for k, message in too_large.items()},
        **{k: ManifestRow(k, "", photo_class(k), Status.EXCLUDED, error=f"marked 'no usable face' by {c.reviewer} at {c.time}",
                          method=Method.MANUAL, etag=etags[k], correction=c.id, reason=Reason.NO_USABLE_FACE)
           for k, c in excluded.items()},
    }
    photos = {k: etags[k] for k in listing.photos if k not in left_out}
    last = _last_run(ctx, index, listing.images_roots)
    decision = incremental.decide(photos, last.rows, last.faces, reuse=last.reuse, whole_folders=rp.settings.uses_siblings,
                                  corrections={k: c.id for k, c in manual.items()}, left_out=left_out)
    shards = make_shards(decision.todo, rp.photos_per_shard, rp.max_shards,
                         whole_folders=rp.settings.uses_siblings) if decision.todo else []
    plan_id = _plan_id(rp, shards, etags, {k: c.id for k, c in manual.items()})
    files = ctx.folder.shards(plan_id)
    for i, keys in enumerate(shards):
        reviewed = {k: ManualBox(manual[k].box, manual[k].id) for k in keys if k in manual}
        ctx.files.write_shard_list(ctx.folder, plan_id, i, ShardList(keys, [etags[k] for k in keys], reviewed))
    ctx.files.write_rows(ctx.folder.bucket, files.reused, decision.reused)
    ctx.files.write_rows(ctx.folder.bucket, files.gone, decision.gone)
    ctx.files.write_rows(ctx.folder.bucket, files.refused, left_out.values())
    ctx.files.write_plan(ctx.folder, PlanDoc(
        run_id=run_id, plan_id=plan_id, source_uri=rp.source.uri, dest_uri=rp.dest.uri, csv_uris=csv_uris,
        images_roots=listing.images_roots, photos=len(listing.photos), shards=len(shards), to_crop=len(decision.todo),
        reused=len(decision.reused), gone=len(decision.gone), index_run=last.run_id, refused=len(refused),
        too_large=len(too_large),
        corrected=len(manual) + len(excluded),
        stale_corrections=[StaleCorrection(c.source, c.decision, c.reviewer, c.time) for c in stale[:STALE_LISTED]],
        stale_count=len(stale),
        unreadable_decisions=({"count": decided.unreadable_count, "keys": [k for k, _ in decided.unreadable[:100]]}
                              if decided.unreadable_count else {}),
        skipped_hidden=listing.hidden, skipped_not_photos=listing.not_photos, skipped_faces=listing.faces,
        settings=rp.settings.as_dict(),
    ))
    log.info("%d photos under %s in %d images folder(s) (%s); CSVs: %s", len(listing.photos), rp.source.uri,
             len(listing.images_roots), ", ".join(listing.images_roots), ", ".join(csv_uris) or "none")
    log.info("%d reused from run %s, %d to crop in %d shard(s) of up to %d (plan %s), %d deleted since", len(decision.reused),
             last.run_id or "-", len(decision.todo), len(shards), max(map(len, shards), default=0), plan_id,
             len(decision.gone))
    if manual or excluded:
        log.info("reviewers' corrections: %d face box(es), %d photo(s) with no usable face", len(manual), len(excluded))
    if decided.unreadable_count:
        log.warning("%s", decided.unreadable_note())
    for c in stale[:10]:
        log.warning("stale correction: %s changed since %s reviewed it (%s at %s); not applied: review it again",
                    rp.source.key_uri(c.source), c.reviewer, c.decision, c.time)
    if len(stale) > 10:
        log.warning("... and %d more stale corrections (plan.json lists %d)", len(stale) - 10, min(len(stale), STALE_LISTED))
    for what, keys in (("hidden file", listing.hidden), ("file without a photo extension", listing.not_photos),
                       ("face under a 'faces' folder (not a photo)", listing.faces)):
        if keys:
            log.warning("skipping %d %s(s), e.g. %s", len(keys), what, keys[0])
    for key, problem in list(refused.items())[:10]:
        log.warning("refusing %s: %s", rp.source.key_uri(key), problem)
    for key, message in list(too_large.items())[:10]:
        log.warning("not downloading %s: %s", rp.source.key_uri(key), message)
    log.info("run reports: %s", ctx.folder.uri)
    return [ShardRef(i, len(keys), plan_id).to_xcom() for i, keys in enumerate(shards)]


def _check_limits(rp: RunParams, photos: list[str]) -> None:
    """miss_rate_limits may only name classes this dataset has (or `all`): a typo must not
    wait until the run has cropped everything to be found."""
    classes = {photo_class(k) for k in photos} | {metrics.ALL}
    unknown = sorted(set(rp.miss_rate_limits) - classes)
    if unknown:
        raise ParamsError(f"bad params: miss_rate_limits names {', '.join(map(repr, unknown))}, no class of this dataset "
                          f"(its classes: {', '.join(sorted(classes))})")


def _check_spellings(photos: list[str]) -> None:
    """No two photos may differ only by Unicode normalisation (a name written in NFC by Excel or
    Windows and in NFD by macOS): their faces would merge on a macOS disk and a CSV row could not
    tell them apart."""
    seen: dict[str, str] = {}
    twins = []
    for key in photos:
        other = seen.setdefault(unicodedata.normalize("NFC", key), key)
        if other != key:
            twins.append((other, key))
    if twins:
        (a, b), more = twins[0], f" ({len(twins)} such pairs)" if len(twins) > 1 else ""
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
    object this pipeline did not write."""
    rp, store = ctx.params, ctx.s3
    published: dict[str, str] = {}
    for uri in csv_uris:
        bucket, key = csv_object(uri, rp)
        data = store.get_if_exists(bucket, key)
        if data is None:
            raise RunError(f"CSV {uri} does not exist: fix csv_uris (or leave it empty for every *.csv under source_uri)")
        if not data.strip():
            raise RunError(f"CSV {uri} is empty (0 bytes): fix the file, or list the CSVs to rewrite in csv_uris")
        text, _ = csv_rewrite.decode(data, rp.csv_encoding, uri)
        csv_rewrite.check_path_column(csv_rewrite.header_of(text), rp.path_column, uri)
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
    """What the run the index points at leaves this one."""

    run_id: str | None  # whenever there is an index: publish checks that no other run moved it meanwhile
    rows: list[ManifestRow] | None  # its manifest (with another source: None); serves to find deleted photos
    faces: dict[str, str]  # the destination's faces and their ETags, when faces may be reused
    reuse: bool


def _last_run(ctx: RunContext, index: IndexDoc | None, images_roots: list[str]) -> LastRun:
    """Reuse needs the same source, the same face-shaping settings, no full recrop, and centre
    boxes not sized by the run's own detections (fallback_size auto)."""
    rp = ctx.params
    last = None if index is None or index.source_uri != rp.source.uri else ctx.files.rows_if_exists(rp.dest.bucket,
                                                                                                     index.manifest)
    if last is None:
        return LastRun(None if index is None else index.run_id, None, {}, False)
    reuse = (not rp.full_recrop and rp.settings.fallback_size != "auto"
             and index.settings_fingerprint == rp.settings.fingerprint())
    faces = {rp.dest.rel(o.key): o.etag for root in images_roots
             for o in ctx.s3.objects(rp.dest.child(face_rel(root, "")), "dest_uri")} if reuse else {}
    return LastRun(index.run_id, last, faces, reuse)


def _plan_id(rp: RunParams, shards: list[list[str]], etags: Mapping[str, str], manual: Mapping[str, str]) -> str:
    """What the shards' results depend on: where, every setting of the crop (not only those
    that shape faces: a photo refused over max_megapixels may be cropped under another), each
    photo's key and content (ETag) in shard order, and the reviewers' boxes applied."""
    settings = {k: v for k, v in rp.settings.as_dict().items() if k not in ("device", "workers")}
    what = {"source": rp.source.uri, "dest": rp.dest.uri, "settings": settings,
            "shards": [[(k, etags[k], manual.get(k, "")) for k in shard] for shard in shards]}
    return hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()[:16]
