"""Reviewers' decisions on crops: checked, folded into the one that counts per photo, and which
of them the next run applies (pure).

The review page (facecrop_ops.review) records each decision as an object of its own under
`<dest>/_facecrop/corrections/<id>.json`, never overwritten, so two reviewers saving at once
lose nothing and every decision's history stays in the bucket. Ids begin with the time, so the
bucket lists decisions oldest first. The latest decision on a photo counts; it applies while
the photo is the object it was made on (same ETag), after which it is stale: reported, not
applied.

Anyone with bucket access can write there, and older or newer versions may have: every
object is checked whole (`parse`) where it is read, and one that fails is skipped and named,
never reaching a run. Reads stay cheap however long the history grows: a snapshot holds the
fold of every decision up to a key (`Snapshot.through`), and readers add only the objects
listed after it (`DecisionFold`). Objects are folded into a snapshot only once they are older
than GRACE_SECONDS, so one that lands late (a slow save, a clock a little behind) still sorts
after the snapshot's key and is read; two compactors at once each write a snapshot that is
right on its own, whichever lands last.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from facecrop_ops.dataset.codes import Decision
from facecrop_ops.dataset.csv_rewrite import inert

COLUMNS = ("source", "etag", "decision", "x1", "y1", "x2", "y2", "reviewer", "time", "id")
GRACE_SECONDS = 15 * 60  # far beyond a save's duration and the clock skew between Airflow's machines
UNREADABLE_KEPT = 1000  # unreadable keys a snapshot names (it counts them all)


class CorrectionError(ValueError):
    """A decision that cannot be recorded or read: the message says what is wrong with it."""


@dataclass(frozen=True)
class Correction:
    source: str  # the photo's key under the source root, as in the manifest
    etag: str  # the photo's ETag the reviewer looked at
    decision: Decision
    box: tuple[float, float, float, float] | None  # the face box for `box`, in the photo's pixels
    reviewer: str
    time: str  # ISO 8601, UTC
    id: str  # unique: the time and a random part; also the object's name
    size: tuple[int, int] | None = None  # the upright photo's W x H the box was checked against (none before)

    def to_json(self) -> str:
        doc = {"source": self.source, "etag": self.etag, "decision": str(self.decision),
               "box": None if self.box is None else list(self.box), "reviewer": self.reviewer, "time": self.time,
               "id": self.id}
        if self.size is not None:
            doc["size"] = list(self.size)
        return json.dumps(doc, sort_keys=True)

    @classmethod
    def from_json(cls, text: str | bytes) -> Correction:
        return parse(text)


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_box(box: Any, size: tuple[int, int] | None = None) -> tuple[float, float, float, float]:
    """Four finite numbers forming a box of at least one pixel, inside the photo of `size`
    (W, H) when it is known, never at negative coordinates."""
    values = list(box) if isinstance(box, (list, tuple)) else []
    if len(values) != 4 or not all(_number(v) for v in values):
        raise CorrectionError("a box correction needs the face box as four numbers: x1, y1, x2, y2")
    x1, y1, x2, y2 = (float(v) for v in values)
    if not all(math.isfinite(v) for v in (x1, y1, x2, y2)):
        raise CorrectionError(f"the box {values} is not four finite numbers")
    if x2 - x1 < 1 or y2 - y1 < 1:
        raise CorrectionError(f"the box {values} is empty: x2 must exceed x1 and y2 exceed y1")
    if x1 < 0 or y1 < 0 or (size is not None and (x2 > size[0] or y2 > size[1])):
        where = f"the {size[0]}x{size[1]} photo" if size is not None else "the photo"
        raise CorrectionError(f"the box {values} leaves {where}")
    return (x1, y1, x2, y2)


def make(source: str, etag: str, decision: str, box: Iterable[float] | None, reviewer: str, time: str, nonce: str,
         size: tuple[int, int] | None = None) -> Correction:
    """A checked new decision: a known decision; for `box`, a box inside the photo of `size`."""
    if not isinstance(decision, str) or decision not in tuple(Decision):
        raise CorrectionError(f"decision must be one of {', '.join(Decision)} (got {str(decision)[:40]!r})")
    face = check_box(box, size) if decision == Decision.BOX else None
    return Correction(source, etag, Decision(decision), face, reviewer, time,
                      f"{time.replace(':', '').replace('-', '')}-{nonce}", size)


_TEXT_FIELDS = ("source", "etag", "reviewer", "time", "id")


def parse(data: str | bytes, name: str | None = None) -> Correction:
    """A stored decision object, checked whole: a JSON object; text where text belongs (a
    reviewer's name of any length is fine; a number is not); a known decision; a time that
    is ISO 8601; for `box`, four finite numbers inside the photo it recorded; and, given the
    object's `name`, an id equal to it. Raises CorrectionError saying what is wrong."""
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise CorrectionError(f"not JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise CorrectionError(f"not a JSON object but {type(doc).__name__}")
    wrong = [k for k in _TEXT_FIELDS if not isinstance(doc.get(k), str) or not doc.get(k)]
    if wrong:
        raise CorrectionError(f"{', '.join(wrong)} must be non-empty text")
    decision = doc.get("decision")
    if not isinstance(decision, str) or decision not in tuple(Decision):
        raise CorrectionError(f"unknown decision {str(decision)[:40]!r}")
    try:
        datetime.fromisoformat(doc["time"])
    except ValueError:
        raise CorrectionError(f"time {doc['time'][:40]!r} is not ISO 8601") from None
    if name is not None and doc["id"] != name:
        raise CorrectionError(f"its id {doc['id'][:40]!r} is not its name {name[:40]!r}")
    size = doc.get("size")
    if size is not None:
        if not (isinstance(size, list) and len(size) == 2 and all(isinstance(v, int) and not isinstance(v, bool) and v > 0
                                                                  for v in size)):
            raise CorrectionError("size must be the photo's width and height in pixels")
        size = (size[0], size[1])
    box = check_box(doc.get("box"), size) if decision == Decision.BOX else None
    return Correction(doc["source"], doc["etag"], Decision(decision), box, doc["reviewer"], doc["time"], doc["id"], size)


def object_name(key: str) -> str:
    """`<dest>/_facecrop/corrections/<id>.json` -> `<id>`."""
    name = key.rsplit("/", 1)[-1]
    return name[: -len(".json")] if name.endswith(".json") else name


def settled_before(now: datetime) -> str:
    """Decision objects whose name sorts before this are settled: every save still to come is
    named later (ids begin with the UTC time). A name that is no time at all never settles."""
    return (now - timedelta(seconds=GRACE_SECONDS)).strftime("%Y%m%dT%H%M%S")


@dataclass
class DecisionFold:
    """The decision that counts for each photo, from decisions added oldest first: the last
    box, no_face or reset; an `accept` only where nothing else was decided (it never undoes a
    box or an exclusion: "the crop is right" said of a reviewer's crop confirms it). Objects
    that could not be read are counted and named, never applied."""

    latest: dict[str, Correction] = field(default_factory=dict)
    decisions: int = 0
    unreadable: list[tuple[str, str]] = field(default_factory=list)  # (key, why), at most UNREADABLE_KEPT
    unreadable_count: int = 0

    def add(self, c: Correction) -> None:
        self.decisions += 1
        current = self.latest.get(c.source)
        if c.decision != Decision.ACCEPT or current is None or current.decision == Decision.RESET:
            self.latest[c.source] = c

    def refuse(self, key: str, why: str) -> None:
        self.unreadable_count += 1
        if len(self.unreadable) < UNREADABLE_KEPT:
            self.unreadable.append((key, why))

    def add_object(self, key: str, data: bytes) -> Correction | None:
        try:
            c = parse(data, object_name(key))
        except CorrectionError as exc:
            self.refuse(key, str(exc))
            return None
        self.add(c)
        return c

    def copy(self) -> DecisionFold:
        return DecisionFold(dict(self.latest), self.decisions, list(self.unreadable), self.unreadable_count)

    def unreadable_note(self) -> str:
        """'N decision objects could not be read: keys…' for logs, plan.json and the page."""
        if not self.unreadable_count:
            return ""
        shown = ", ".join(f"{k} ({why})" for k, why in self.unreadable[:5])
        more = f" and {self.unreadable_count - 5} more" if self.unreadable_count > 5 else ""
        return (f"{self.unreadable_count} decision object(s) could not be read and were skipped: {shown}{more}; "
                "delete or fix them (they are never applied)")


@dataclass(frozen=True)
class Snapshot:
    """corrections.snapshot.json: the fold of every decision object whose key sorts up to
    `through` ("" before any), and the key of the last decision corrections.csv lists."""

    through: str
    fold: DecisionFold
    csv_through: str = ""

    def to_json(self) -> str:
        latest = [[c.source, c.etag, str(c.decision), None if c.box is None else list(c.box), c.reviewer, c.time, c.id,
                   None if c.size is None else list(c.size)] for c in self.fold.latest.values()]
        return json.dumps({"format": 1, "through": self.through, "csv_through": self.csv_through,
                           "decisions": self.fold.decisions, "unreadable_count": self.fold.unreadable_count,
                           "unreadable": self.fold.unreadable, "latest": latest}, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | bytes) -> Snapshot:
        doc = json.loads(text)
        latest = {}
        for source, etag, decision, box, reviewer, time, id_, size in doc["latest"]:
            latest[source] = Correction(source, etag, Decision(decision), None if box is None else tuple(box), reviewer,
                                        time, id_, None if size is None else tuple(size))
        fold = DecisionFold(latest, doc["decisions"], [tuple(u) for u in doc["unreadable"]], doc["unreadable_count"])
        return cls(doc["through"], fold, doc.get("csv_through", ""))


def latest(corrections: Iterable[Correction]) -> dict[str, Correction]:
    """The decision that counts for each photo (by time, then id; see DecisionFold)."""
    fold = DecisionFold()
    for c in sorted(corrections, key=lambda c: (c.time, c.id)):
        fold.add(c)
    return fold.latest


def applicable(corrections: Mapping[str, Correction], etags: Mapping[str, str]) -> tuple[dict[str, Correction], list[Correction]]:
    """(corrections that apply to this run's photos, stale ones: their photo changed since).
    Decisions on photos no longer in the dataset are neither (they went with their photo), and
    `accept` and `reset` apply nothing."""
    active, stale = {}, []
    for source, c in sorted(corrections.items()):
        if c.decision in (Decision.ACCEPT, Decision.RESET) or source not in etags:
            continue
        if etags[source] == c.etag:
            active[source] = c
        else:
            stale.append(c)
    return active, stale


def csv_rows(corrections: Iterable[Correction]) -> str:
    """Decisions as corrections.csv rows, in the order given. Every cell that came from a
    person or the bucket is written so a spreadsheet shows it as text, never runs it."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    for c in corrections:
        box = c.box or ("",) * 4
        writer.writerow([inert(c.source), inert(c.etag), c.decision, *box, inert(c.reviewer), inert(c.time), inert(c.id)])
    return out.getvalue()


def to_csv(corrections: Iterable[Correction]) -> str:
    """corrections.csv: every decision, oldest first, for people to read."""
    header = ",".join(COLUMNS) + "\n"
    return header + csv_rows(sorted(corrections, key=lambda c: (c.time, c.id)))
