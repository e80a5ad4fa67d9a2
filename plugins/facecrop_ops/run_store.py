"""facecrop's own objects in S3, read and written in one place: the task bodies and the review
service both go through a RunStore for plans, shard lists, manifest rows, the index, reviewers'
decisions and the tables rebuilt from many objects. Names and formats are `dataset.run_folder`'s;
this is the I/O around them.
"""

from __future__ import annotations

import io
import itertools
import json
import logging
from collections.abc import Callable, Iterable, Iterator, MutableMapping
from datetime import datetime
from typing import Any, TypeVar

from facecrop_ops.dataset import corrections, manifest
from facecrop_ops.dataset.locations import S3Location
from facecrop_ops.dataset.manifest import ManifestRow
from facecrop_ops.dataset.review_items import ReviewIndex, page_info
from facecrop_ops.dataset.run_folder import DestFolder, IndexDoc, PlanDoc, RunFolder, ShardList
from facecrop_ops.s3io import S3Store

log = logging.getLogger(__name__)

JSON = "application/json"
CSV_MARK, CSV_SETTLED, CSV_YOUNG = "through", "settled-bytes", "young"  # corrections.csv's marks, see _write_csv
T = TypeVar("T")


class ShardMissing(LookupError):
    """A shard of the plan has no manifest: its crop task did not finish."""


class RunStore:
    """The destination's facecrop folder (`<dest>/_facecrop/`) through an S3Store."""

    def __init__(self, store: S3Store, dest: S3Location) -> None:
        self.s3 = store
        self.dest = DestFolder(dest)

    def run(self, run_id: str) -> RunFolder:
        return self.dest.run(run_id)

    def run_for_reading(self, run_id: str) -> RunFolder:
        """The run's folder, or where a version before injective folder names put it."""
        folder, legacy = self.dest.run(run_id), self.dest.legacy_run(run_id)
        if legacy == folder or self.s3.metadata(folder.bucket, folder.plan) is not None:
            return folder
        return legacy if self.s3.metadata(legacy.bucket, legacy.plan) is not None else folder

    # --- documents

    def plan(self, folder: RunFolder) -> PlanDoc:
        return PlanDoc.from_json(self.s3.get(folder.bucket, folder.plan))

    def plan_if_exists(self, folder: RunFolder) -> PlanDoc | None:
        data = self.s3.get_if_exists(folder.bucket, folder.plan)
        return None if data is None else PlanDoc.from_json(data)

    def write_plan(self, folder: RunFolder, doc: PlanDoc) -> None:
        self.s3.put_text(folder.bucket, folder.plan, doc.to_json(), JSON)

    def shard_list(self, folder: RunFolder, plan_id: str, index: int) -> ShardList:
        return ShardList.from_json(self.s3.get(folder.bucket, folder.shards(plan_id).photos(index)))

    def write_shard_list(self, folder: RunFolder, plan_id: str, index: int, shard: ShardList) -> None:
        self.s3.put_text(folder.bucket, folder.shards(plan_id).photos(index), shard.to_json(), JSON)

    def index(self) -> IndexDoc | None:
        data = self.s3.get_if_exists(self.dest.bucket, self.dest.index)
        return None if data is None else IndexDoc.from_json(data)

    def write_index(self, doc: IndexDoc) -> None:
        self.s3.put_text(self.dest.bucket, self.dest.index, doc.to_json(), JSON)

    # --- manifest rows

    def rows(self, bucket: str, key: str) -> list[ManifestRow]:
        return manifest.loads(self.s3.get(bucket, key).decode())

    def rows_if_exists(self, bucket: str, key: str) -> list[ManifestRow] | None:
        data = self.s3.get_if_exists(bucket, key)
        return None if data is None else manifest.loads(data.decode())

    def write_rows(self, bucket: str, key: str, rows: Iterable[ManifestRow]) -> None:
        self.s3.put_text(bucket, key, manifest.dumps(rows))

    def run_row_parts(self, folder: RunFolder, plan: PlanDoc) -> list[Iterator[ManifestRow]]:
        """Every photo's row of a planned run, as streams: reused from the last run, refused or
        excluded by the plan, cropped by each shard. Raises ShardMissing, before anything is
        read, while a shard has not finished."""
        files = folder.shards(plan.plan_id)
        for index in range(plan.shards):
            if self.s3.metadata(folder.bucket, files.done(index)) is None:
                raise ShardMissing(f"shard {index} has no manifest at {folder.uri_of(files.done(index))}: its crop task "
                                   "did not finish")
        keys = [files.reused, files.refused, *(files.done(index) for index in range(plan.shards))]
        return [self.stream_rows(folder.bucket, key) for key in keys]

    def stream_rows(self, bucket: str, key: str) -> Iterator[ManifestRow]:
        """A manifest's rows as they stream in (none when there is no such object: plans of
        older versions wrote no refused.csv)."""
        yield from self.open_rows(bucket, key) or ()

    def open_rows(self, bucket: str, key: str) -> Iterator[ManifestRow] | None:
        """A manifest's rows as they stream in; None when there is no such object."""
        body = self.s3.open(bucket, key)
        if body is None:
            return None
        return manifest.iter_rows(io.TextIOWrapper(io.BufferedReader(body), encoding="utf-8", newline=""))

    def write_lines(self, bucket: str, key: str, lines: Iterable[str]) -> None:
        """A manifest from rows already written as lines (manifest.line), streamed up."""
        with self.s3.writer(bucket, key, "text/csv") as out:
            out.write(manifest.HEADER.encode())
            for line in lines:
                out.write(line.encode())

    def write_review(self, folder: RunFolder, items: Iterable[dict[str, Any]]) -> ReviewIndex:
        """The run's review items (sorted by photo), in pages, then their index."""
        index = ReviewIndex()
        page: list[dict[str, Any]] = []
        for entry in itertools.chain(items, [None]):
            if entry is not None:
                page.append(entry)
            if page and (entry is None or len(page) == index.page_size):
                self.s3.put_text(folder.bucket, folder.review_page(len(index.pages)), json.dumps(page), JSON)
                index.add(page_info(page))
                page = []
        self.s3.put_text(folder.bucket, folder.review_index, index.to_json(), JSON)
        return index

    def review_index(self, folder: RunFolder) -> ReviewIndex | None:
        data = self.s3.get_if_exists(folder.bucket, folder.review_index)
        return None if data is None else ReviewIndex.from_json(data)

    def review_page(self, folder: RunFolder, number: int) -> list[dict[str, Any]]:
        return json.loads(self.s3.get(folder.bucket, folder.review_page(number)))

    # --- reviewers' decisions

    def snapshot(self) -> corrections.Snapshot:
        """The fold of the settled decisions (an empty one before any compaction)."""
        data = self.s3.get_if_exists(self.dest.bucket, self.dest.corrections_snapshot)
        if data is None:
            return corrections.Snapshot("", corrections.DecisionFold())
        try:
            return corrections.Snapshot.from_json(data)
        except (ValueError, KeyError, TypeError) as exc:  # damaged: the objects themselves are the record
            log.warning("ignoring %s (%s): folding every decision object again", self.dest.corrections_snapshot, exc)
            return corrections.Snapshot("", corrections.DecisionFold())

    def snapshot_if_changed(self, etag: str | None) -> tuple[corrections.Snapshot | None, str]:
        """(the snapshot, its ETag) when it changed since the one of `etag` (none read then: a
        cached snapshot serves); an empty snapshot while there is none."""
        data, now = self.s3.get_unless(self.dest.bucket, self.dest.corrections_snapshot, etag)
        if now is None:
            return corrections.Snapshot("", corrections.DecisionFold()), ""
        if data is None:
            return None, now
        try:
            return corrections.Snapshot.from_json(data), now
        except (ValueError, KeyError, TypeError) as exc:  # damaged: the objects themselves are the record
            log.warning("ignoring %s (%s): folding every decision object again", self.dest.corrections_snapshot, exc)
            return corrections.Snapshot("", corrections.DecisionFold()), now

    def decisions(self, snapshot: corrections.Snapshot | None = None,
                  cache: MutableMapping[str, bytes] | None = None) -> corrections.DecisionFold:
        """Every decision folded: the snapshot and the objects listed after it (few: the ones
        saved since the last compaction), each checked whole. Decision objects never change:
        given a `cache`, only the ones not in it yet are read."""
        snap = snapshot or self.snapshot()
        fold = snap.fold.copy()
        for key, data in self._objects_after(snap.through, {k for k, _ in snap.fold.unreadable}, cache):
            fold.add_object(key, data)
        return fold

    def _objects_after(self, through: str, skip: set[str],
                       cache: MutableMapping[str, bytes] | None = None) -> list[tuple[str, bytes]]:
        loc = self.dest.corrections
        keys = [k for k in self.s3.list(loc, "dest_uri", loc.key(through) if through else "") if k not in skip]
        known = {} if cache is None else {k: cache[k] for k in keys if k in cache}
        fetched = {key: data for key, data in self.s3.get_many(loc.bucket, [k for k in keys if k not in known])
                   if data is not None}
        if cache is not None:
            cache.update(fetched)
        return [(key, known[key] if key in known else fetched[key]) for key in keys if key in known or key in fetched]

    def save_correction(self, made: corrections.Correction) -> None:
        """One object per decision, never overwritten: saving reads nothing else."""
        self.s3.put(self.dest.bucket, self.dest.correction(made.id), made.to_json().encode(), JSON)

    def compact(self, now: datetime, cache: MutableMapping[str, bytes] | None = None) -> corrections.DecisionFold:
        """Fold the decisions settled by `now` into the snapshot, list them in corrections.csv,
        and return every decision folded. Costs what was saved since the last compaction, not
        the history."""
        snap = self.snapshot()
        limit = corrections.settled_before(now)
        known_bad = {k for k, _ in snap.fold.unreadable}
        fold, through, young, folded = snap.fold.copy(), snap.through, [], []
        for key, data in self._objects_after(snap.through, known_bad, cache):
            name = key.rsplit("/", 1)[-1]
            if not young and name < limit:
                through = name
                c = fold.add_object(key, data)
                if c is not None:
                    folded.append(c)
                continue
            young.append((key, data))
            try:
                corrections.parse(data, corrections.object_name(key))
            except corrections.CorrectionError as exc:
                fold.refuse(key, str(exc))  # never readable: named in the snapshot, not read again
        everything, refused = fold.copy(), {k for k, _ in fold.unreadable}
        young_decisions = [c for key, data in young if key not in refused and (c := everything.add_object(key, data)) is not None]
        if through != snap.through or fold.unreadable_count != snap.fold.unreadable_count:
            self.s3.put_text(self.dest.bucket, self.dest.corrections_snapshot,
                             corrections.Snapshot(through, fold).to_json(), JSON)
        self._write_csv(snap.through, through, folded, young_decisions)
        return everything

    def _write_csv(self, old_through: str, through: str, folded: list[corrections.Correction],
                   young: list[corrections.Correction]) -> None:
        """corrections.csv: the settled decisions, appended as they settle, then the young ones,
        rewritten each time. Its marks (x-amz-meta-through: the last settled decision it lists;
        x-amz-meta-settled-bytes: where the young rows begin) make a compactor that stopped
        between two writes, or raced another, leave no gap and no double."""
        bucket, key = self.dest.bucket, self.dest.corrections_csv
        meta = self.s3.metadata(bucket, key)
        csv_through = None if meta is None else meta.get(CSV_MARK)
        settled_bytes = int((meta or {}).get(CSV_SETTLED, -1))
        if csv_through is not None and (csv_through > through or (
                csv_through == through and not young and (meta or {}).get(CSV_YOUNG) == "0")):
            return  # another compactor got further, or nothing changed
        if csv_through is None or settled_bytes < 0:  # none yet, or one written before the marks
            base, rows = (",".join(corrections.COLUMNS) + "\n").encode(), self._settled_after("", through)
        else:
            base = self.s3.get(bucket, key)[:settled_bytes]
            rows = folded if csv_through == old_through else self._settled_after(csv_through, through)
        settled = base + corrections.csv_rows(rows).encode()
        self.s3.put(bucket, key, settled + corrections.csv_rows(young).encode(), "text/csv",
                    {CSV_MARK: through, CSV_SETTLED: str(len(settled)), CSV_YOUNG: str(len(young))})

    def _settled_after(self, start: str, through: str) -> list[corrections.Correction]:
        """The readable decisions whose object sorts after `start`, up to `through`."""
        fold = corrections.DecisionFold()
        return [c for key, data in self._objects_after(start, set())
                if key.rsplit("/", 1)[-1] <= through and (c := fold.add_object(key, data)) is not None]

    # --- tables derived from many objects

    def run_metrics(self) -> dict[str, bytes]:
        """Every run's metrics.json that exists, by key: the run folders are listed one level
        deep (not every shard file and review page of every run), then each is read."""
        prefixes, _ = self.s3.folders(self.dest.runs, "dest_uri")
        keys = [prefix + "metrics.json" for prefix in prefixes]
        return {key: data for key, data in self.s3.get_many(self.dest.bucket, keys) if data is not None}

    def rebuild(self, objects: Callable[[], dict[str, bytes]], out_key: str,
                render: Callable[[list[tuple[str, bytes]]], tuple[str, T]], rounds: int = 5) -> T | None:
        """Write `out_key` (under `dest`) from the objects `objects()` reads; `render` turns them
        into (text, a value returned to the caller). After writing, ask again: an object another
        process added meanwhile (its own rebuild may have looked before ours existed) is folded
        in by a new round, so the last write holds every object."""
        seen: set[str] | None = None
        value: T | None = None
        for _ in range(rounds + 1):
            found = objects()
            if set(found) == seen:
                return value
            if seen is not None and _ == rounds:
                break
            text, value = render(sorted(found.items()))
            self.s3.put_text(self.dest.bucket, out_key, text)
            seen = set(found)
        log.warning("%s: objects kept changing over %d rounds; the next rebuild folds in the rest",
                    self.dest.uri_of(out_key), rounds)
        return value
