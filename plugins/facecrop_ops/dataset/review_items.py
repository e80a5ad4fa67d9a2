"""The crops a reviewer looks at in a run, chosen and paged once by the run (pure).

The Face review page shows a run's doubtful crops: every photo MTCNN missed (and how it was
cropped), every photo a reviewer corrected or excluded, and the least confident detections. At
a million photos the manifest is a gigabyte; the page must open in seconds. So `publish` (and
the review gate, for a run still waiting) writes them once, sorted by photo, in pages of
PAGE_SIZE under `<run>/review/`, with an index that counts each page's items by kind, class and
method: the page reads the index and the pages it shows, and a filter skips every page the
index says holds nothing for it.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from facecrop_ops.dataset.codes import Method, Status
from facecrop_ops.dataset.manifest import ManifestRow

PAGE_SIZE = 200
LOW_CONFIDENCE = 24  # the least confident detections shown beside the misses
MISSED, CORRECTED, LOW = "missed", "corrected", "low confidence"


def kind_of(row: ManifestRow) -> str | None:
    """Why a row is shown (a reviewer's crop, a miss), or None: only the least confident of the
    other detections are, chosen apart (they need the whole run to be known)."""
    if row.method == Method.MANUAL:
        return CORRECTED
    if row.status in (Status.FALLBACK, Status.EXCLUDED):
        return MISSED
    return None


def is_candidate(row: ManifestRow) -> bool:
    """A detection that may be among the least confident."""
    return row.status == Status.DETECTED and row.method == Method.MTCNN and row.prob is not None


def item(row: ManifestRow, kind: str) -> dict[str, Any]:
    """What the page draws for a photo."""
    return {"source": row.source, "class": row.photo_class, "status": str(row.status), "method": str(row.method),
            "kind": kind, "prob": row.prob, "box": row.box, "crop": row.crop, "etag": row.etag,
            "has_face": bool(row.output)}


@dataclass
class PageInfo:
    """One page of items: its first and last photo and what it holds."""

    first: str
    last: str
    count: int
    kinds: dict[str, int] = field(default_factory=dict)
    classes: dict[str, int] = field(default_factory=dict)
    methods: dict[str, int] = field(default_factory=dict)

    def matches(self, kind: str | None, cls: str | None, method: str | None) -> bool:
        return all(value is None or counts.get(value, 0) > 0
                   for value, counts in ((kind, self.kinds), (cls, self.classes), (method, self.methods)))


def page_info(items: list[dict[str, Any]]) -> PageInfo:
    return PageInfo(items[0]["source"], items[-1]["source"], len(items), dict(Counter(i["kind"] for i in items)),
                    dict(Counter(i["class"] for i in items)), dict(Counter(i["method"] or i["status"] for i in items)))


def matches(entry: dict[str, Any], kind: str | None, cls: str | None, method: str | None) -> bool:
    return ((kind is None or entry["kind"] == kind) and (cls is None or entry["class"] == cls)
            and (method is None or (entry["method"] or entry["status"]) == method))


@dataclass
class ReviewIndex:
    """review/index.json: the pages, in photo order, and the run's totals by kind."""

    pages: list[PageInfo] = field(default_factory=list)
    kinds: dict[str, int] = field(default_factory=dict)
    classes: dict[str, int] = field(default_factory=dict)
    methods: dict[str, int] = field(default_factory=dict)
    page_size: int = PAGE_SIZE

    @property
    def count(self) -> int:
        return sum(p.count for p in self.pages)

    def add(self, info: PageInfo) -> None:
        self.pages.append(info)
        for mine, theirs in ((self.kinds, info.kinds), (self.classes, info.classes), (self.methods, info.methods)):
            for name, n in theirs.items():
                mine[name] = mine.get(name, 0) + n

    def find(self, source: str) -> int | None:
        """The page that would hold a photo."""
        lo, hi = 0, len(self.pages)
        while lo < hi:
            mid = (lo + hi) // 2
            if self.pages[mid].last < source:
                lo = mid + 1
            else:
                hi = mid
        return lo if lo < len(self.pages) and self.pages[lo].first <= source else None

    def to_json(self) -> str:
        return json.dumps({"format": 1, "page_size": self.page_size, "kinds": self.kinds, "classes": self.classes,
                           "methods": self.methods, "pages": [vars(p) for p in self.pages]}, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | bytes) -> ReviewIndex:
        doc = json.loads(text)
        return cls([PageInfo(**p) for p in doc["pages"]], doc["kinds"], doc["classes"], doc["methods"], doc["page_size"])
