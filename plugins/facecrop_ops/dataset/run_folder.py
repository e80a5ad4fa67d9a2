"""Every object facecrop keeps under `<dest>/_facecrop/`, named in one place, and the documents
among them as typed values with their JSON (pure: no S3 here; `run_store` reads and writes them).

    <dest>/_facecrop/index.json                   IndexDoc: which run's manifest the next run may reuse
    <dest>/_facecrop/history.csv                  every run's per-class metrics (rebuilt)
    <dest>/_facecrop/corrections/<id>.json        one reviewer's decision each
    <dest>/_facecrop/corrections.csv              every decision, for people (appended as decisions settle)
    <dest>/_facecrop/corrections.snapshot.json    the fold of the settled decisions (dataset.corrections)
    <dest>/_facecrop/runs/<run>/plan.json         PlanDoc: what the plan decided
    <dest>/_facecrop/runs/<run>/shards/<plan id>/NNNNN.json           ShardList: a shard's photos
                                                 NNNNN.manifest.csv   its rows, written last: the done mark
                                                 NNNNN.partial.csv    the rows a failed try finished
                                                 reused.csv, gone.csv, refused.csv
    <dest>/_facecrop/runs/<run>/manifest.csv, rejects.csv, metrics.json, report.html
    <dest>/_facecrop/runs/<run>/review/index.json, NNNNN.json   the crops Face review shows (dataset.review_items)

Shard files live under their plan's id: a cleared run over a changed bucket plans anew and
never trusts a done mark written for other photos. Each document reads the formats earlier
versions wrote.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from facecrop_ops.dataset.locations import S3Location

FACECROP_DIR = "_facecrop"
RUNS_DIR = f"{FACECROP_DIR}/runs"
INDEX = f"{FACECROP_DIR}/index.json"
HISTORY = f"{FACECROP_DIR}/history.csv"
CORRECTIONS_DIR = f"{FACECROP_DIR}/corrections"
CORRECTIONS_CSV = f"{FACECROP_DIR}/corrections.csv"
CORRECTIONS_SNAPSHOT = f"{FACECROP_DIR}/corrections.snapshot.json"


def folder_name(run_id: str) -> str:
    """The run's folder: the id itself when it is portable, else the id with ':', '+' and the
    like made '_' and a hash of the real id added, so that two ids never share a folder
    (`...T23:36:06+00:00` and a triggered `...T23_36_06_00_00` did)."""
    safe = legacy_folder_name(run_id)
    return run_id if safe == run_id else f"{safe}-{hashlib.sha256(run_id.encode()).hexdigest()[:12]}"


def legacy_folder_name(run_id: str) -> str:
    """How versions before the hash named a run's folder: read their runs where they are."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", run_id)


@dataclass(frozen=True)
class DestFolder:
    """What facecrop keeps beside the faces it publishes under `dest`."""

    dest: S3Location

    @property
    def bucket(self) -> str:
        return self.dest.bucket

    def uri_of(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"

    @property
    def index(self) -> str:
        return self.dest.key(INDEX)

    @property
    def history(self) -> str:
        return self.dest.key(HISTORY)

    @property
    def corrections(self) -> S3Location:
        return self.dest.child(CORRECTIONS_DIR)

    def correction(self, correction_id: str) -> str:
        return self.dest.key(f"{CORRECTIONS_DIR}/{correction_id}.json")

    @property
    def corrections_csv(self) -> str:
        return self.dest.key(CORRECTIONS_CSV)

    @property
    def corrections_snapshot(self) -> str:
        return self.dest.key(CORRECTIONS_SNAPSHOT)

    @property
    def runs(self) -> S3Location:
        return self.dest.child(RUNS_DIR)

    def run(self, run_id: str) -> RunFolder:
        return RunFolder(self.dest.child(f"{RUNS_DIR}/{folder_name(run_id)}"))

    def legacy_run(self, run_id: str) -> RunFolder:
        return RunFolder(self.dest.child(f"{RUNS_DIR}/{legacy_folder_name(run_id)}"))


@dataclass(frozen=True)
class RunFolder:
    """One run's folder: `loc` is `<dest>/_facecrop/runs/<run>/`; every property is a key."""

    loc: S3Location

    @property
    def bucket(self) -> str:
        return self.loc.bucket

    @property
    def uri(self) -> str:
        return self.loc.uri

    def uri_of(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"

    @property
    def plan(self) -> str:
        return self.loc.key("plan.json")

    @property
    def manifest(self) -> str:
        return self.loc.key("manifest.csv")

    @property
    def rejects(self) -> str:
        return self.loc.key("rejects.csv")

    @property
    def metrics(self) -> str:
        return self.loc.key("metrics.json")

    @property
    def report(self) -> str:
        return self.loc.key("report.html")

    @property
    def review_index(self) -> str:
        return self.loc.key("review/index.json")

    def review_page(self, number: int) -> str:
        return self.loc.key(f"review/{number:05d}.json")

    def shards(self, plan_id: str) -> ShardFiles:
        return ShardFiles(self.loc.child(f"shards/{plan_id}"))


@dataclass(frozen=True)
class ShardFiles:
    """The files of one plan of a run: `loc` is `.../shards/<plan id>/`."""

    loc: S3Location

    def photos(self, index: int) -> str:
        return self.loc.key(f"{index:05d}.json")

    def done(self, index: int) -> str:
        return self.loc.key(f"{index:05d}.manifest.csv")

    def partial(self, index: int) -> str:
        return self.loc.key(f"{index:05d}.partial.csv")

    @property
    def reused(self) -> str:
        return self.loc.key("reused.csv")

    @property
    def gone(self) -> str:
        return self.loc.key("gone.csv")

    @property
    def refused(self) -> str:
        return self.loc.key("refused.csv")


def _known(cls: type, doc: Mapping[str, Any]) -> dict[str, Any]:
    """A document's fields this version knows: a newer version's extra keys are ignored, and
    keys an older one lacked take their defaults."""
    names = {f.name for f in dataclasses.fields(cls)}
    return {k: v for k, v in doc.items() if k in names}


@dataclass(frozen=True)
class StaleCorrection:
    """A reviewer's decision not applied because its photo changed since."""

    source: str
    decision: str
    reviewer: str
    time: str


@dataclass(frozen=True)
class PlanDoc:
    """plan.json: what the plan decided; later tasks and the review page read it."""

    run_id: str
    plan_id: str
    source_uri: str
    dest_uri: str
    csv_uris: list[str]
    images_roots: list[str]
    photos: int
    shards: int
    to_crop: int = 0
    reused: int = 0
    gone: int = 0
    index_run: str | None = None  # the run whose faces it reused; publish checks the index still points there
    refused: int = 0
    too_large: int = 0  # photos over max_photo_megabytes, never downloaded
    corrected: int = 0
    stale_corrections: list[StaleCorrection] = field(default_factory=list)  # the first ones
    stale_count: int | None = None  # all of them (None: a plan before the count, which listed all)
    unreadable_decisions: dict[str, Any] = field(default_factory=dict)  # {"count": N, "keys": [...]}, when any
    skipped_hidden: list[str] = field(default_factory=list)
    skipped_not_photos: list[str] = field(default_factory=list)
    skipped_faces: list[str] = field(default_factory=list)
    skipped_count: dict[str, int] = field(default_factory=dict)  # of each kind (the lists above name the first 100)
    settings: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2)

    @classmethod
    def from_json(cls, text: str | bytes) -> PlanDoc:
        doc = _known(cls, json.loads(text))
        doc["stale_corrections"] = [StaleCorrection(**_known(StaleCorrection, s)) for s in doc.get("stale_corrections", [])]
        return cls(**doc)


@dataclass(frozen=True)
class ManualBox:
    """A reviewer's face box a shard crops instead of what detection finds."""

    box: tuple[float, float, float, float]
    id: str  # the correction's id, recorded in the photo's row


@dataclass(frozen=True)
class ShardList:
    """NNNNN.json: a shard's photo keys (relative to the source root), in order, with the
    ETags the plan saw and the reviewers' boxes to apply."""

    photos: list[str]
    etags: list[str]
    manual: dict[str, ManualBox] = field(default_factory=dict)

    def to_json(self) -> str:
        manual = {k: {"box": list(m.box), "id": m.id} for k, m in self.manual.items()}
        return json.dumps({"photos": self.photos, "etags": self.etags, "manual": manual})

    @classmethod
    def from_json(cls, text: str | bytes) -> ShardList:
        doc = json.loads(text)
        manual = {k: ManualBox(tuple(m["box"]), m["id"]) for k, m in doc.get("manual", {}).items()}  # none before reviews
        return cls(doc["photos"], doc["etags"], manual)

    @property
    def etag_of(self) -> dict[str, str]:
        return dict(zip(self.photos, self.etags))


@dataclass(frozen=True)
class IndexDoc:
    """index.json: the run whose manifest the next run over this destination may reuse faces
    from, and under which source and settings those faces were made."""

    run_id: str
    manifest: str  # the manifest's key in the destination's bucket
    source_uri: str
    settings_fingerprint: str
    format: int | None = 2  # None: written before published CSVs carried facecrop's mark

    def to_json(self) -> str:
        return json.dumps({"format": self.format, "run_id": self.run_id, "manifest": self.manifest,
                           "source_uri": self.source_uri, "settings_fingerprint": self.settings_fingerprint}, indent=2)

    @classmethod
    def from_json(cls, text: str | bytes) -> IndexDoc:
        doc = json.loads(text)
        return cls(doc["run_id"], doc["manifest"], doc["source_uri"], doc["settings_fingerprint"], doc.get("format"))

    @property
    def legacy(self) -> bool:
        """Versions before the mark published their CSVs without it: a destination with an
        index of that format holds only their CSVs under the published names."""
        return self.format is None


@dataclass(frozen=True)
class ShardRef:
    """What the plan hands each mapped detect task through XCom: small, never the photos."""

    shard: int
    photos: int
    plan: str

    def to_xcom(self) -> dict[str, Any]:
        return {"shard": self.shard, "photos": self.photos, "plan": self.plan}

    @classmethod
    def from_xcom(cls, doc: Mapping[str, Any]) -> ShardRef:
        return cls(int(doc["shard"]), int(doc.get("photos", 0)), str(doc["plan"]))
