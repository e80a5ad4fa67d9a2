"""The bodies of the DAG's tasks, as plain functions of (params, run id, S3 store).

The DAG file only wires these together, so each step runs and is tested without a
scheduler. Everything a run writes besides faces and published CSVs goes under
`<dest>/_facecrop/runs/<run_id>/`: plan.json; under shards/<plan id>/, NNNNN.json (a shard's
photo keys and reviewers' boxes), NNNNN.manifest.csv (written last by a shard: its "done"
mark), NNNNN.partial.csv (the rows a failed try finished), reused.csv, gone.csv and
refused.csv (the photos the plan refused or a reviewer excluded); manifest.csv, rejects.csv,
metrics.json and report.html. Under `<dest>/_facecrop/`: history.csv, index.json and the
reviewers' corrections.

Errors a retry cannot fix (bad params, no photos, a missing CSV or bucket, access denied)
raise ParamsError, RunError or StorageError; anything else (S3 throttling, timeouts, a
killed worker) propagates so the task fails and Airflow retries it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from facecrop_ops.config.run import ParamsError, RunParams, parse
from facecrop_ops.dataset import corrections, csv_rewrite, incremental, manifest
from facecrop_ops.dataset.locations import (
    REFUSED,
    REPORTS_DIR,
    S3Location,
    face_key_problem,
    face_rel,
    parse_s3_uri,
    published_csv_name,
    run_dir,
    split_images_root,
)
from facecrop_ops.dataset.manifest import ERROR, EXCLUDED, MANUAL, ManifestRow
from facecrop_ops.dataset.naming import content_type, person_folder, photo_class
from facecrop_ops.dataset.planning import classify, make_shards
from facecrop_ops.reporting import metrics
from facecrop_ops.reporting.progress import Progress, format_duration
from facecrop_ops.s3io import S3Store, StorageError, client_for

log = logging.getLogger(__name__)

__all__ = ["ParamsError", "RunError", "StorageError", "gpu_pool_started", "plan", "crop_shard", "publish", "record_metrics", "check_miss_rates"]


REPORT = "report.html"  # in the run's folder
HISTORY = "_facecrop/history.csv"  # under dest_uri


class RunError(RuntimeError):
    """The run cannot go on (no photos, missing CSV, lost shard); the message says why."""


@contextmanager
def fail_fast() -> Iterator[None]:
    """End a task at once, without retries, on errors a retry cannot fix (bad params, a missing
    CSV, bucket or shard, access refused): their message names the fix. Everything else (S3
    throttling, timeouts, a lost worker) is left to Airflow's retries."""
    try:
        yield
    except (ParamsError, RunError, StorageError, ValueError) as exc:
        from airflow.sdk.exceptions import AirflowFailException

        raise AirflowFailException(str(exc)) from None


def open_store(params: Mapping[str, Any]) -> S3Store:
    """An S3Store on the run's Airflow connection, sized for concurrent transfers."""
    from facecrop_ops.config import deployment

    threads = deployment.TRANSFER_THREADS
    return S3Store(client_for(params.get("aws_conn_id") or "aws_default", threads), threads, deployment.S3_RETRY_DELAYS)


def _shard_key(rd: S3Location, plan_id: str, index: int, suffix: str) -> str:
    """Shard files live under their plan's id: a cleared run over a changed bucket plans anew
    and never trusts a done mark written for other photos."""
    return rd.key(f"shards/{plan_id}/{index:05d}{suffix}")


def _plan_id(rp: RunParams, shards: list[list[str]], etags: Mapping[str, str], manual: Mapping[str, str]) -> str:
    """What the shards' results depend on: where, every setting of the crop (not only those
    that shape faces: a photo refused over max_megapixels may be cropped under another), each
    photo's key and content (ETag) in shard order, and the reviewers' boxes applied."""
    settings = {k: v for k, v in rp.settings.as_dict().items() if k not in ("device", "workers")}
    what = {"source": rp.source.uri, "dest": rp.dest.uri, "settings": settings,
            "shards": [[(k, etags[k], manual.get(k, "")) for k in shard] for shard in shards]}
    return hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()[:16]


def _csv_object(uri_or_name: str, source: S3Location) -> tuple[str, str]:
    """(bucket, key) of a CSV given as a URI, or as a name under the dataset root."""
    loc = parse_s3_uri(uri_or_name if uri_or_name.startswith("s3://") else source.key_uri(uri_or_name), "csv")
    return loc.bucket, loc.prefix.rstrip("/")


PUBLISHED_BY = "facecrop-run"  # user metadata (x-amz-meta-facecrop-run) on every CSV this pipeline publishes


def _check_csvs(csv_uris: list[str], rp: RunParams, store: S3Store, index: Mapping[str, Any] | None) -> None:
    """Each CSV exists, is text in csv_encoding with one path column, and publishes to a name
    of its own where no object of someone else's lies: a published CSV never overwrites an
    object this pipeline did not write."""
    published: dict[str, str] = {}
    for uri in csv_uris:
        bucket, key = _csv_object(uri, rp.source)
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
        # Versions before the mark published without it: a destination with an index of that
        # format holds only their CSVs under these names.
        legacy = index is not None and "format" not in index
        if meta is not None and PUBLISHED_BY not in meta and not legacy:
            raise RunError(f"{rp.dest.key_uri(name)} exists and was not published by facecrop, so rewriting {uri} would "
                           "overwrite it: move that object away, or choose another dest_uri")


def plan(params: Mapping[str, Any], run_id: str, store: S3Store) -> list[dict[str, Any]]:
    """Check params, list the dataset, check the CSVs, refuse photos whose face could not be
    written safely, decide which photos the last run's faces still serve, write the shard
    lists of the others; return one small dict per shard for the mapped detect task (none
    when nothing changed)."""
    rp = parse(params)
    etags = {rp.source.rel(o.key): o.etag for o in store.objects(rp.source, "source_uri")}
    listing = classify(etags)
    if not listing.photos:
        raise RunError(f"no photos under {rp.source.uri}<split>/images/: check source_uri")
    classes = {photo_class(k) for k in listing.photos} | {metrics.ALL}
    unknown = sorted(set(rp.miss_rate_limits) - classes)
    if unknown:
        raise ParamsError(f"bad params: miss_rate_limits names {', '.join(map(repr, unknown))}, no class of this dataset "
                          f"(its classes: {', '.join(sorted(classes))})")
    csv_uris = list(rp.csv_uris) or [rp.source.key_uri(name) for name in listing.csvs]
    pointer = store.get_if_exists(rp.dest.bucket, rp.dest.key(incremental.INDEX))
    index_doc = None if pointer is None else json.loads(pointer)
    _check_csvs(csv_uris, rp, store, index_doc)
    refused = {k: reason for k in listing.photos if (reason := face_key_problem(k, rp.dest))}
    active, stale = corrections.applicable(_corrections(rp.dest, store), etags)
    excluded = {k: c for k, c in active.items() if c.decision == corrections.NO_FACE and k not in refused}
    manual = {k: c for k, c in active.items() if c.decision == corrections.BOX and k not in refused}
    left_out = {
        **{k: ManifestRow(k, "", photo_class(k), ERROR, error=reason, etag=etags[k]) for k, reason in refused.items()},
        **{k: ManifestRow(k, "", photo_class(k), EXCLUDED, error=f"marked 'no usable face' by {c.reviewer} at {c.time}",
                          method=MANUAL, etag=etags[k], correction=c.id) for k, c in excluded.items()},
    }
    photos = {k: etags[k] for k in listing.photos if k not in left_out}
    index_run, previous, faces, reuse = _index(rp, index_doc, listing.images_roots, store)
    decision = incremental.decide(photos, previous, faces, reuse=reuse, whole_folders=rp.settings.uses_siblings,
                                  corrections={k: c.id for k, c in manual.items()}, left_out=left_out)
    gone = decision.gone
    shards = make_shards(decision.todo, rp.photos_per_shard, rp.max_shards,
                         whole_folders=rp.settings.uses_siblings) if decision.todo else []
    plan_id = _plan_id(rp, shards, etags, {k: c.id for k, c in manual.items()})
    rd = run_dir(rp.dest, run_id)
    for i, keys in enumerate(shards):
        reviewed = {k: {"box": manual[k].box, "id": manual[k].id} for k in keys if k in manual}
        store.put_text(rd.bucket, _shard_key(rd, plan_id, i, ".json"),
                       json.dumps({"photos": keys, "etags": [etags[k] for k in keys], "manual": reviewed}), "application/json")
    store.put_text(rd.bucket, rd.key(f"shards/{plan_id}/reused.csv"), manifest.dumps(decision.reused))
    store.put_text(rd.bucket, rd.key(f"shards/{plan_id}/gone.csv"), manifest.dumps(gone))
    store.put_text(rd.bucket, rd.key(f"shards/{plan_id}/refused.csv"), manifest.dumps(left_out.values()))
    plan_doc = {
        "run_id": run_id, "plan_id": plan_id, "source_uri": rp.source.uri, "dest_uri": rp.dest.uri, "csv_uris": csv_uris,
        "images_roots": listing.images_roots, "photos": len(listing.photos), "shards": len(shards),
        "to_crop": len(decision.todo), "reused": len(decision.reused), "gone": len(gone), "index_run": index_run,
        "refused": len(refused), "corrected": len(manual) + len(excluded),
        "stale_corrections": [{"source": c.source, "decision": c.decision, "reviewer": c.reviewer, "time": c.time} for c in stale],
        "skipped_hidden": listing.hidden, "skipped_not_photos": listing.not_photos, "skipped_faces": listing.faces,
        "settings": rp.settings.as_dict(),
    }
    store.put_text(rd.bucket, rd.key("plan.json"), json.dumps(plan_doc, indent=2), "application/json")
    log.info("%d photos under %s in %d images folder(s) (%s); CSVs: %s", len(listing.photos), rp.source.uri,
             len(listing.images_roots), ", ".join(listing.images_roots), ", ".join(csv_uris) or "none")
    log.info("%d reused from run %s, %d to crop in %d shard(s) of up to %d (plan %s), %d deleted since", len(decision.reused),
             index_run or "-", len(decision.todo), len(shards), max(map(len, shards), default=0), plan_id, len(gone))
    if manual or excluded:
        log.info("reviewers' corrections: %d face box(es), %d photo(s) with no usable face", len(manual), len(excluded))
    for c in stale:
        log.warning("stale correction: %s changed since %s reviewed it (%s at %s); not applied: review it again",
                    rp.source.key_uri(c.source), c.reviewer, c.decision, c.time)
    for what, keys in (("hidden file", listing.hidden), ("file without a photo extension", listing.not_photos),
                       ("face under a 'faces' folder (not a photo)", listing.faces)):
        if keys:
            log.warning("skipping %d %s(s), e.g. %s", len(keys), what, keys[0])
    for key, reason in list(refused.items())[:10]:
        log.warning("refusing %s: %s", rp.source.key_uri(key), reason[len(REFUSED):])
    log.info("run reports: %s", rd.uri)
    return [{"shard": i, "photos": len(keys), "plan": plan_id} for i, keys in enumerate(shards)]


def _corrections(dest: S3Location, store: S3Store) -> dict[str, corrections.Correction]:
    """The reviewers' latest decision on each photo, from the objects the review page wrote."""
    return corrections.latest(corrections.parse_all(store.read_all(dest.child(corrections.CORRECTIONS_DIR), ".json")))


def _index(rp: RunParams, doc: Mapping[str, Any] | None, images_roots: list[str], store: S3Store,
           ) -> tuple[str | None, list[ManifestRow] | None, dict[str, str], bool]:
    """(the run the index points at, its manifest rows, the faces in dest with their ETags,
    whether its faces may be reused): reuse needs the same source, the same face-shaping
    settings, no full recrop, and centre boxes not sized by the run's own detections
    (fallback_size auto). Its rows serve even without reuse, to find the photos deleted
    since. The run id is returned whenever there is an index, so publish can tell whether
    another run moved it on meanwhile."""
    last = None if doc is None or doc["source_uri"] != rp.source.uri else store.get_if_exists(rp.dest.bucket, doc["manifest"])
    if last is None:
        return None if doc is None else doc["run_id"], None, {}, False
    reuse = (not rp.full_recrop and rp.settings.fallback_size != "auto"
             and doc["settings_fingerprint"] == rp.settings.fingerprint())
    faces = {rp.dest.rel(o.key): o.etag for root in images_roots
             for o in store.objects(rp.dest.child(face_rel(root, "")), "dest_uri")} if reuse else {}
    return doc["run_id"], manifest.loads(last.decode()), faces, reuse


GONE = "photo not found: deleted after the run was planned"


def crop_shard(
    params: Mapping[str, Any], run_id: str, shard: Mapping[str, Any], store: S3Store, *, workers: int = 0
) -> dict[str, int]:
    """Pull a shard's photos, crop them, upload the faces, then write the shard manifest.
    Downloads, detection and uploads stream through a bounded window, so a task's memory
    does not grow with its shard. The manifest is written last: a retry that finds it has
    nothing left to do.

    A photo S3 keeps failing (throttling, 5xx, dropped connections past boto3's attempts)
    does not stop the others: it is tried again after them, with pauses. If some still fail,
    the rows finished so far are kept in a partial manifest and the try fails; the next try
    fetches only what is missing (whole person folders when crops depend on siblings, the
    whole shard when the centre box is sized from the shard's detections)."""
    # Imported here: they load OpenCV and torch, which only this task needs.
    from facecrop_ops.vision.detector import resolve_device
    from facecrop_ops.vision.imaging import BadPhoto
    from facecrop_ops.vision.processor import Photo, crop_photos, plan_workers

    rp = parse(params)
    rd = run_dir(rp.dest, run_id)
    index, plan_id = shard["shard"], shard["plan"]
    done_key = _shard_key(rd, plan_id, index, ".manifest.csv")
    done = store.get_if_exists(rd.bucket, done_key)
    if done is not None:
        rows = manifest.loads(done.decode())
        log.info("shard %d was finished by an earlier try (%d photos): nothing to redo", index, len(rows))
        return _summary(index, rows)
    listed = json.loads(store.get(rd.bucket, _shard_key(rd, plan_id, index, ".json")))
    keys, etags = listed["photos"], dict(zip(listed["photos"], listed["etags"]))
    manual = listed.get("manual", {})  # reviewers' face boxes (shards planned by older versions have none)
    partial_key = _shard_key(rd, plan_id, index, ".partial.csv")
    earlier = store.get_if_exists(rd.bucket, partial_key)
    kept = [] if earlier is None or rp.settings.fallback_size == "auto" else manifest.loads(earlier.decode())
    if kept:
        keys = [k for k in keys if k not in {r.source for r in kept}]
        log.info("shard %d: %d photos were finished by an earlier try; %d left", index, len(kept), len(keys))

    settings = replace(rp.settings, workers=workers)
    device = resolve_device(settings.device)
    n_workers = plan_workers(settings, len(keys))
    log.info("detect on %s%s, %d process(es) planned, engine %s, batch %d", device, _device_name(device),
             n_workers, settings.engine, settings.batch_size)
    pulled = Progress(len(keys), lambda line: log.info("pull: %s", line))
    cropped = Progress(len(keys), lambda line: log.info("crop: %s", line))
    rows: list[ManifestRow] = []
    failed: list[tuple[str, Exception]] = []

    def downloads() -> Iterator[tuple[str, bytes | None]]:
        for key, data in store.get_many(rp.source.bucket, (rp.source.key(k) for k in keys), pulled.advance, failed):
            yield rp.source.rel(key), data

    def photos() -> Iterator[Photo]:
        pulled_in = _whole_folders(downloads(), keys) if settings.uses_siblings else downloads()
        for rel, data in pulled_in:
            if data is None:
                rows.append(ManifestRow(rel, "", photo_class(rel), ERROR, error=GONE, etag=etags[rel]))
                cropped.advance(1)
            else:
                box = manual[rel]["box"] if rel in manual else None
                yield Photo(rel, face_rel(*split_images_root(rel)), data=data, manual_box=None if box is None else tuple(box))

    def faces() -> Iterator[tuple[str, bytes, str]]:
        for result in crop_photos(photos(), settings, on_done=lambda part: cropped.advance(len(part)), workers=n_workers,
                                  reread=reread):
            source = result.row.source
            rows.append(replace(result.row, etag=etags[source], correction=manual[source]["id"] if source in manual else ""))
            if result.face is not None:
                yield rp.dest.key(result.row.output), result.face, content_type(result.row.output)

    def reread(photo: Photo) -> bytes:
        """The planned version of a photo again (a centre crop sized after the shard)."""
        data = store.get_if_exists(rp.source.bucket, rp.source.key(photo.source), etag=etags[photo.source])
        if data is None:
            raise BadPhoto("photo not found: deleted or replaced while the shard ran")
        return data

    uploaded = store.put_many(rp.dest.bucket, faces())
    rows = kept + [replace(r, face_etag=uploaded[rp.dest.key(r.output)]) if r.output else r for r in rows]
    if failed:
        missing = {rp.source.rel(key) for key, _ in failed}
        if settings.uses_siblings:  # their siblings were cropped without them: redo the folders
            folders = {person_folder(k) for k in missing} - {None}
            rows = [r for r in rows if person_folder(r.source) not in folders]
        store.put_text(rd.bucket, partial_key, manifest.dumps(rows))
        key, error = failed[0]
        raise RuntimeError(f"shard {index}: {len(failed)} photo(s) could not be downloaded after every retry, e.g. "
                           f"s3://{rp.source.bucket}/{key}: {error}. {len(rows)} photo(s) are done and kept; the "
                           "task's next try downloads only the rest")
    store.put_text(rd.bucket, done_key, manifest.dumps(rows))
    summary = _summary(index, rows)
    log.info("shard %d: %d photos, %d faces uploaded to %s, %d detected, %d fallback, %d errors",
             index, summary["photos"], len(uploaded) + sum(bool(r.output) for r in kept), rp.dest.uri, summary["detected"],
             summary["fallback"], summary["errors"])
    return summary


def _whole_folders(pulled: Iterator[tuple[str, bytes | None]], keys: list[str]) -> Iterator[tuple[str, bytes | None]]:
    """Downloads regrouped so a person folder's photos come together, as the crops of a folder
    depend on each other: a folder whose photo S3 answered late waits for it."""
    expected: dict[str | None, int] = {}
    for key in keys:
        expected[person_folder(key)] = expected.get(person_folder(key), 0) + 1
    waiting: dict[str, list[tuple[str, bytes | None]]] = {}
    for rel, data in pulled:
        folder = person_folder(rel)
        if folder is None:
            yield rel, data
            continue
        waiting.setdefault(folder, []).append((rel, data))
        if len(waiting[folder]) == expected[folder]:
            yield from sorted(waiting.pop(folder))


def _device_name(device: str) -> str:
    if device.startswith("cuda"):
        import torch

        return f" ({torch.cuda.get_device_name(torch.device(device))})"
    return f" ({os.cpu_count()} CPU cores)"


def _summary(index: int, rows: list[ManifestRow]) -> dict[str, int]:
    m = metrics.per_class(rows)[metrics.ALL]
    return {"shard": index, "photos": m.images, "detected": m.detected, "fallback": m.fallback, "errors": m.errors}


def _run_rows(rd: S3Location, plan_doc: Mapping[str, Any], store: S3Store) -> list[ManifestRow]:
    """Every photo's row: reused from the last run, refused or excluded by the plan, cropped by a shard."""
    plan_id = plan_doc["plan_id"]
    rows = manifest.loads(store.get(rd.bucket, rd.key(f"shards/{plan_id}/reused.csv")).decode())
    refused = store.get_if_exists(rd.bucket, rd.key(f"shards/{plan_id}/refused.csv"))  # none in plans of older versions
    rows.extend(manifest.loads(refused.decode()) if refused else [])
    for index in range(plan_doc["shards"]):
        key = _shard_key(rd, plan_id, index, ".manifest.csv")
        shard_manifest = store.get_if_exists(rd.bucket, key)
        if shard_manifest is None:
            raise RunError(f"shard {index} has no manifest at s3://{rd.bucket}/{key}: its crop task did not finish")
        rows.extend(manifest.loads(shard_manifest.decode()))
    return rows


REVIEW_PAGE = "/facecrop/review"  # the Face review plugin's page on Airflow's API server


def needs_review(params: Mapping[str, Any], run_id: str, store: S3Store) -> str:
    """With review_gate on, the message a person approves or rejects before the CSVs are
    published, when a class misses more faces than miss_rate_limits allows; "" otherwise (no
    gate, or every class within its limit)."""
    rp = parse(params)
    if not rp.review_gate or not rp.miss_rate_limits:
        return ""
    rd = run_dir(rp.dest, run_id)
    rows = _run_rows(rd, json.loads(store.get(rd.bucket, rd.key("plan.json"))), store)
    classes = metrics.as_json(metrics.per_class(rows))
    over = _over_limits(classes, rp.miss_rate_limits)
    if not over:
        return ""
    link = f"{REVIEW_PAGE}?{urlencode({'run_id': run_id})}"
    lines = "\n".join(f"- {line}" for line in over)
    return (f"Detection missed more faces than `miss_rate_limits` allows in run {run_id}:\n\n{lines}\n\n"
            f"Look at the doubtful crops and correct them in [Face review]({link}) (corrections apply from the next "
            "run). **Approve** publishes this run's CSVs as they are; **Reject** ends the run failed with nothing "
            "published.")


def publish(params: Mapping[str, Any], run_id: str, store: S3Store) -> dict[str, Any]:
    """Merge the shard manifests and the reused rows, rewrite every CSV to the faces and
    publish it (rows whose photo was unreadable or not found go to rejects.csv instead),
    remove the faces of photos deleted since the last run, then point the index here."""
    rp = parse(params)
    rd = run_dir(rp.dest, run_id)
    plan_doc = json.loads(store.get(rd.bucket, rd.key("plan.json")))
    plan_id = plan_doc["plan_id"]
    pointer = store.get_if_exists(rp.dest.bucket, rp.dest.key(incremental.INDEX))
    current = None if pointer is None else json.loads(pointer)["run_id"]
    if current not in (None, plan_doc["index_run"], run_id):
        raise RunError(f"{rp.dest.uri} moved on to run {current} after this run was planned: its reused faces and "
                       "deletions may no longer hold. Clear the whole run (every task) so it plans again")
    rows = _run_rows(rd, plan_doc, store)
    store.put_text(rd.bucket, rd.key("manifest.csv"), manifest.dumps(rows))
    by_source = {r.source: r for r in rows}
    rates = {k: v.miss_rate for k, v in metrics.per_class(rows).items()}
    # Every CSV is rewritten before any is written: one that cannot be never leaves the others
    # published from this run and itself from the last.
    rewritten, rejects = [], []
    for uri in plan_doc["csv_uris"]:
        bucket, key = _csv_object(uri, rp.source)
        text, bom = csv_rewrite.decode(store.get(bucket, key), rp.csv_encoding, uri)
        result = csv_rewrite.rewrite(text, csv_name=uri, path_column=rp.path_column, photos=by_source,
                                     images_roots=plan_doc["images_roots"], source=rp.source, dest=rp.dest)
        out_name = published_csv_name(key.rsplit("/", 1)[-1])
        rewritten.append((uri, out_name, csv_rewrite.encode(result.text, rp.csv_encoding, bom, uri), result))
        rejects.extend(result.rejects)
    published = []
    for uri, out_name, data, result in rewritten:
        store.put(rp.dest.bucket, rp.dest.key(out_name), data, f"text/csv; charset={rp.csv_encoding}", {PUBLISHED_BY: run_id})
        published.append({"uri": rp.dest.key_uri(out_name), "source": uri, "rows": result.kept, "rejected": len(result.rejects)})
        log.info("published %s: %d rows, %d rejected", rp.dest.key_uri(out_name), result.kept, len(result.rejects))
    store.put_text(rd.bucket, rd.key("rejects.csv"), csv_rewrite.rejects_csv(rejects))
    for r in rejects[:10]:
        log.warning("rejected %s line %d (%s): %s", r.csv, r.line, r.path, r.reason)
    gone = manifest.loads(store.get(rd.bucket, rd.key(f"shards/{plan_id}/gone.csv")).decode())
    _remove_stale_faces(rp, plan_doc["images_roots"], rows, gone, store)
    index = {"format": 2, "run_id": run_id, "manifest": rd.key("manifest.csv"), "source_uri": rp.source.uri,
             "settings_fingerprint": rp.settings.fingerprint()}
    store.put_text(rp.dest.bucket, rp.dest.key(incremental.INDEX), json.dumps(index, indent=2), "application/json")
    return {"csvs": published, "miss_rate": rates, "photos": len(rows), "reports": rd.uri, "report": rd.key_uri(REPORT)}


def _remove_stale_faces(rp: RunParams, images_roots: list[str], rows: list[ManifestRow], gone: list[ManifestRow],
                        store: S3Store) -> None:
    """Remove the faces no published row points at any more: those of photos deleted from the
    bucket, of photos that became unreadable and of photos a reviewer left out. Only faces that exist are counted, and a key
    that is a photo of the dataset (under one of its images folders) is never removed."""
    outputs = {r.output for r in rows}
    wanted = {face_rel(*split) for r in (*gone, *(r for r in rows if r.status in (ERROR, EXCLUDED)))
              if not r.error.startswith(REFUSED) and (split := split_images_root(r.source))} - outputs
    wanted = {k for k in wanted if not _is_a_photo(rp.dest.key(k), rp)}
    existing = {rp.dest.rel(o.key) for root in images_roots for o in store.objects(rp.dest.child(face_rel(root, "")), "dest_uri")}
    stale = sorted(wanted & existing)
    store.delete_many(rp.dest.bucket, [rp.dest.key(k) for k in stale])
    if stale:
        log.info("removed %d face(s) of photos deleted or now unreadable, e.g. %s", len(stale), rp.dest.key_uri(stale[0]))


def _is_a_photo(key: str, rp: RunParams) -> bool:
    """Whether a key of the destination bucket lies under an images folder of the dataset."""
    return (rp.dest.bucket == rp.source.bucket and key.startswith(rp.source.prefix)
            and split_images_root(rp.source.rel(key)) is not None)


def record_metrics(
    params: Mapping[str, Any], run_id: str, store: S3Store, *, run_after: datetime | None = None,
    logical_date: datetime | None = None,
) -> dict[str, Any]:
    """Per-class metrics from the run's manifest to metrics.json, the history, the review page,
    the task log and Airflow metrics. Returns metrics.json's document."""
    from facecrop_ops.reporting import history  # pandas and matplotlib load here, not in every task

    rp = parse(params)
    rd = run_dir(rp.dest, run_id)
    rows = manifest.loads(store.get(rd.bucket, rd.key("manifest.csv")).decode())
    per_class = metrics.per_class(rows)
    doc = {
        "run": {
            "run_id": run_id, "run_after": _iso(run_after), "logical_date": _iso(logical_date), "source_uri": rp.source.uri,
            "dest_uri": rp.dest.uri, "engine": rp.settings.engine, "settings_fingerprint": rp.settings.fingerprint(),
            "report": rd.key_uri(REPORT),
        },
        "classes": metrics.as_json(per_class),
    }
    store.put_text(rd.bucket, rd.key("metrics.json"), json.dumps(doc, indent=2), "application/json")
    past = _rebuild_history(rp.dest, store)
    store.put_text(rd.bucket, rd.key(REPORT), _report(doc, rows, past, rp, store), "text/html")
    log.info("detection per class (metrics in %s):\n%s", rd.key_uri("metrics.json"), metrics.table(per_class))
    log.info("review page: %s; history of %d run(s): %s", rd.key_uri(REPORT), len(history.runs(past)),
             rp.dest.key_uri(HISTORY))
    from airflow.sdk.observability.stats import Stats  # a no-op unless StatsD/OTel metrics are on

    for name, value in metrics.gauges(doc["classes"]).items():
        Stats.gauge(name, value)
    return doc


def _iso(when: datetime | None) -> str | None:
    return None if when is None else when.isoformat()


def _rebuild_history(dest: S3Location, store: S3Store) -> Any:
    """history.csv from every run's metrics.json under dest. After writing, list again: a run
    that finished meanwhile is folded in by a new round (its own rebuild may have read the
    listing before this run's metrics existed), so the last write holds every run."""
    from facecrop_ops.reporting import history

    runs_root = dest.child(REPORTS_DIR)
    seen: set[str] | None = None
    past = history.frame([])
    for _ in range(5):
        keys = {k for k in store.list(runs_root, "dest_uri") if k.endswith("/metrics.json")}
        if keys == seen:
            break
        docs = []
        for key, data in store.get_many(dest.bucket, sorted(keys)):
            doc = None if data is None else json.loads(data)
            if doc is None or "classes" not in doc:
                log.warning("history: skipping %s (%s)", key, "deleted meanwhile" if doc is None else "older format")
                continue
            docs.append(doc)
        past = history.frame(docs)
        store.put_text(dest.bucket, dest.key(HISTORY), history.to_csv(past))
        seen = keys
    return past


def _report(doc: Mapping[str, Any], rows: list[ManifestRow], past: Any, rp: RunParams, store: S3Store) -> str:
    from facecrop_ops.reporting import history, report
    from facecrop_ops.vision.imaging import BadPhoto, thumbnail

    sheets = report.sheets(rows)
    wanted = {rp.dest.key(r.output): r.source for sheet in sheets for r in sheet.rows if r.output}
    thumbs = {}
    for key, data in store.get_many(rp.dest.bucket, list(wanted)):
        try:
            if data is not None:
                thumbs[wanted[key]] = thumbnail(data, report.THUMB_WIDTH)
        except BadPhoto:
            pass  # the tile shows its label alone
    previous = history.previous_run(past, doc["run"]["run_id"])
    current = {name: m["miss_rate"] for name, m in doc["classes"].items()}
    bar = report.bar_chart(current, history.miss_rates(past, previous) if previous else None)
    trend = report.trend_chart(history.trend(past)) if len(history.runs(past)) > 1 else None
    rd = run_dir(rp.dest, doc["run"]["run_id"])
    stale = json.loads(store.get(rd.bucket, rd.key("plan.json"))).get("stale_corrections", [])
    return report.render(doc["run"], doc["classes"], bar, trend, previous, sheets, thumbs, stale)


WAITING_STATES = (None, "none", "scheduled")


def gpu_pool_started(task_states: Mapping[str, Mapping[str, Any]], waited_s: float, limit_s: float, pool: str) -> bool:
    """True once any crop_shard instance has left `scheduled` (the pool gave it a slot).
    After `limit_s` of waiting, raise: with Airflow 3.3 a missing pool is otherwise silent."""
    states = [state for run in task_states.values() for state in run.values()]
    if any(state not in WAITING_STATES for state in states):
        return True
    if waited_s >= limit_s:
        raise RunError(
            f"no crop_shard task has started after {format_duration(waited_s)} waiting in the Airflow pool {pool!r}: "
            f"the pool is missing or has no free slot. Create it with `airflow pools set {pool} 1 \"GPU workers\"` "
            "(or in the UI: Admin > Pools), or set FACECROP_GPU_POOL to an existing pool. The run goes on by itself "
            "once a shard starts; this check retries until then"
        )
    return False


def _over_limits(classes: Mapping[str, Mapping[str, Any]], limits: Mapping[str, float]) -> list[str]:
    over = []
    for name, limit in limits.items():
        if name not in classes:
            over.append(f"{name}: no such class in this run (classes: {', '.join(classes)})")
        elif classes[name]["miss_rate"] is not None and classes[name]["miss_rate"] > limit:
            over.append(f"{name}: miss rate {classes[name]['miss_rate']:.1%} > limit {limit:.1%}")
    return over


def check_miss_rates(doc: Mapping[str, Any], limits: Mapping[str, float]) -> str | None:
    """The alert for a run with classes over their limit (naming classes, rates and the review
    page), or None when all is well."""
    over = _over_limits(doc["classes"], limits)
    if not over:
        return None
    return f"miss-rate limits exceeded in run {doc['run']['run_id']}: {'; '.join(over)}. Review page: {doc['run']['report']}"
