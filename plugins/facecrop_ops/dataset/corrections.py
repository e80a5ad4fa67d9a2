"""A reviewer's corrections of crops, and which of them the next run applies (pure).

The review page (facecrop_ops.review) records each decision as an object of its own under
`<dest>/_facecrop/corrections/`, never overwritten, so two reviewers saving at once lose
nothing; `<dest>/_facecrop/corrections.csv` is rebuilt from all of them for people to read.
The latest decision on a photo counts. It applies while the photo is the object it was made
on (same ETag); once the photo changes, the correction is stale and reported, not applied.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass

from facecrop_ops.dataset.codes import Decision
from facecrop_ops.dataset.csv_rewrite import inert

log = logging.getLogger(__name__)

COLUMNS = ("source", "etag", "decision", "x1", "y1", "x2", "y2", "reviewer", "time", "id")


class CorrectionError(ValueError):
    """A correction that cannot be recorded (no such decision, a box off the photo)."""


@dataclass(frozen=True)
class Correction:
    source: str  # the photo's key under the source root, as in the manifest
    etag: str  # the photo's ETag the reviewer looked at
    decision: Decision
    box: tuple[float, float, float, float] | None  # the face box for `box`, in the photo's pixels
    reviewer: str
    time: str  # ISO 8601, UTC
    id: str  # unique: the time and a random part; also the object's name

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str | bytes) -> Correction:
        doc = json.loads(text)
        box = doc.get("box")
        return cls(doc["source"], doc["etag"], Decision(doc["decision"]), None if box is None else tuple(float(v) for v in box),
                   doc["reviewer"], doc["time"], doc["id"])


def make(source: str, etag: str, decision: str, box: Iterable[float] | None, reviewer: str, time: str, nonce: str,
         size: tuple[int, int] | None = None) -> Correction:
    """A checked correction: a known decision; for `box`, four numbers forming a box of at least
    one pixel inside the photo of `size` (W, H) when it is known."""
    if decision not in tuple(Decision):
        raise CorrectionError(f"decision must be one of {', '.join(Decision)} (got {decision!r})")
    face = None
    if decision == Decision.BOX:
        values = list(box or ())
        if len(values) != 4 or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            raise CorrectionError("a box correction needs the face box as four numbers: x1, y1, x2, y2")
        x1, y1, x2, y2 = (float(v) for v in values)
        if not all(math.isfinite(v) for v in (x1, y1, x2, y2)):
            raise CorrectionError(f"the box {values} is not four finite numbers")
        if x2 - x1 < 1 or y2 - y1 < 1:
            raise CorrectionError(f"the box {values} is empty: x2 must exceed x1 and y2 exceed y1")
        if size is not None and (x1 < 0 or y1 < 0 or x2 > size[0] or y2 > size[1]):
            raise CorrectionError(f"the box {values} leaves the {size[0]}x{size[1]} photo")
        face = (x1, y1, x2, y2)
    return Correction(source, etag, Decision(decision), face, reviewer, time, f"{time.replace(':', '').replace('-', '')}-{nonce}")


def parse_all(records: Iterable[bytes]) -> list[Correction]:
    """Every readable record. One that cannot be read, or holds a box that is not four finite
    numbers, is skipped with a warning: one bad object must not stop every later run."""
    found = []
    for data in records:
        try:
            c = Correction.from_json(data)
            if c.decision == Decision.BOX and (c.box is None or not all(map(math.isfinite, c.box))):
                raise ValueError(f"decision {c.decision!r}, box {c.box!r}")
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("skipping an unreadable correction record (%s): %r", exc, data[:200])
            continue
        found.append(c)
    return found


def latest(corrections: Iterable[Correction]) -> dict[str, Correction]:
    """The decision that counts for each photo: the last box, no_face or reset made (by time,
    then id); an `accept` counts only where nothing else was decided (it never undoes a box
    or an exclusion: "the crop is right" said of a reviewer's crop confirms it)."""
    out: dict[str, Correction] = {}
    for c in sorted(corrections, key=lambda c: (c.time, c.id)):
        if c.decision != Decision.ACCEPT or c.source not in out or out[c.source].decision == Decision.RESET:
            out[c.source] = c
    return out


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


def to_csv(corrections: Iterable[Correction]) -> str:
    """Every decision, oldest first, for people to read (cells from the form written as text)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    for c in sorted(corrections, key=lambda c: (c.time, c.id)):
        box = c.box or ("",) * 4
        writer.writerow([c.source, c.etag, c.decision, *box, inert(c.reviewer), c.time, c.id])
    return out.getvalue()
