"""facecrop's own objects in S3, read and written in one place: the task bodies and the review
service both go through a RunStore for plans, shard lists, manifest rows, the index, reviewers'
decisions and the tables rebuilt from many objects. Names and formats are `dataset.run_folder`'s;
this is the I/O around them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import TypeVar

from facecrop_ops.dataset import corrections, manifest
from facecrop_ops.dataset.locations import S3Location
from facecrop_ops.dataset.manifest import ManifestRow
from facecrop_ops.dataset.run_folder import DestFolder, IndexDoc, PlanDoc, RunFolder, ShardList
from facecrop_ops.s3io import S3Store

log = logging.getLogger(__name__)

JSON = "application/json"
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

    def run_rows(self, folder: RunFolder, plan: PlanDoc) -> list[ManifestRow]:
        """Every photo's row of a planned run: reused from the last run, refused or excluded by
        the plan, cropped by a shard. Raises ShardMissing while a shard has not finished."""
        files = folder.shards(plan.plan_id)
        rows = self.rows(folder.bucket, files.reused)
        rows.extend(self.rows_if_exists(folder.bucket, files.refused) or [])  # none in plans of older versions
        for index in range(plan.shards):
            done = self.rows_if_exists(folder.bucket, files.done(index))
            if done is None:
                raise ShardMissing(f"shard {index} has no manifest at {folder.uri_of(files.done(index))}: its crop task "
                                   "did not finish")
            rows.extend(done)
        return rows

    # --- reviewers' decisions

    def corrections(self) -> list[corrections.Correction]:
        """Every decision object the review page wrote (unreadable ones skipped, with a warning)."""
        return corrections.parse_all(self.s3.read_all(self.dest.corrections, ".json"))

    def save_correction(self, made: corrections.Correction) -> None:
        self.s3.put(self.dest.bucket, self.dest.correction(made.id), made.to_json().encode(), JSON)

    def rebuild_corrections_csv(self) -> None:
        """corrections.csv from every decision object."""
        self.rebuild(self.dest.corrections, ".json", self.dest.corrections_csv,
                     lambda found: (corrections.to_csv(corrections.parse_all(data for _, data in found)), None))

    # --- tables derived from many objects

    def rebuild(self, under: S3Location, suffix: str, out_key: str,
                render: Callable[[list[tuple[str, bytes]]], tuple[str, T]], rounds: int = 5) -> T | None:
        """Write `out_key` (under `dest`) from every object under `under` ending with `suffix`;
        `render` turns the objects into (text, a value returned to the caller). After writing,
        list again: an object another process added meanwhile (its own rebuild may have
        listed before ours existed) is folded in by a new round, so the last write holds
        every object."""
        seen: set[str] | None = None
        value: T | None = None
        for _ in range(rounds):
            keys = {k for k in self.s3.list(under, "dest_uri") if k.endswith(suffix)}
            if keys == seen:
                break
            found = [(key, data) for key, data in self.s3.get_many(under.bucket, sorted(keys)) if data is not None]
            text, value = render(found)
            self.s3.put_text(self.dest.bucket, out_key, text)
            seen = keys
        return value
