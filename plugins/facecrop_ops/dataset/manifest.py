"""The manifest: one row per photo saying what became of it. Shard manifests are merged into
the run's manifest, and the CSV rewrite and the metrics are computed from it alone.

`status`, `method` and `reason` are codes (`dataset.codes`) that decisions read; `error` is
the message for people beside them.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from facecrop_ops.dataset.codes import Method, Reason, Status

COLUMNS = (
    "source", "output", "class", "status", "prob",
    "box_x1", "box_y1", "box_x2", "box_y2",
    "crop_x1", "crop_y1", "crop_x2", "crop_y2",
    "error", "faces", "method", "etag", "face_etag", "reused", "correction", "reason", "reference",
)


@dataclass(frozen=True)
class ManifestRow:
    source: str
    output: str  # "" when no face file was written (status error)
    photo_class: str
    status: Status
    prob: float | None = None
    box: tuple[float, float, float, float] | None = None  # the float face box the crop was built on
    crop: tuple[int, int, int, int] | None = None  # the integer box actually cropped
    error: str = ""  # the message for people; decisions read `reason`
    faces: int = 0  # faces MTCNN found; the crop uses the first
    method: Method = Method.NONE
    etag: str = ""  # the source object's ETag when it was cropped: what an incremental run compares
    face_etag: str = ""  # the face object's ETag as uploaded: a face overwritten since is not reused
    reused: bool = False  # taken from the last run instead of cropped again
    correction: str = ""  # the id of the reviewer's correction the row applies, if any
    reason: Reason = Reason.NONE  # why there is no face (error and excluded rows)
    # For a rescued crop: whose face it came from (the sitting's `normal`, `incorrect_mask`, or
    # `median` of its detections), and which reference photos were passed over and why.
    reference: str = ""

    def record(self) -> dict[str, str]:
        box = self.box or ("",) * 4
        crop = self.crop or ("",) * 4
        return {
            "source": self.source,
            "output": self.output,
            "class": self.photo_class,
            "status": str(self.status),
            "prob": "" if self.prob is None else repr(self.prob),
            **{f"box_{k}": (v if v == "" else repr(float(v))) for k, v in zip(("x1", "y1", "x2", "y2"), box)},
            **{f"crop_{k}": str(v) for k, v in zip(("x1", "y1", "x2", "y2"), crop)},
            "error": self.error,
            "faces": str(self.faces),
            "method": str(self.method),
            "etag": self.etag,
            "face_etag": self.face_etag,
            "reused": "true" if self.reused else "false",
            "correction": self.correction,
            "reason": str(self.reason),
            "reference": self.reference,
        }

    @classmethod
    def from_record(cls, rec: dict[str, str]) -> ManifestRow:
        def floats(prefix: str) -> tuple[float, ...] | None:
            vals = [rec[f"{prefix}_{k}"] for k in ("x1", "y1", "x2", "y2")]
            return None if vals[0] == "" else tuple(float(v) for v in vals)

        crop = floats("crop")
        status = Status(rec["status"])
        return cls(
            source=rec["source"],
            output=rec["output"],
            photo_class=rec["class"],
            status=status,
            prob=float(rec["prob"]) if rec["prob"] else None,
            box=floats("box"),
            crop=None if crop is None else tuple(int(v) for v in crop),
            error=rec["error"],
            faces=int(rec.get("faces") or 0),
            method=Method(rec["method"]),
            etag=rec["etag"],
            face_etag=rec.get("face_etag") or "",
            reused=rec["reused"] == "true",
            correction=rec.get("correction") or "",
            reason=Reason(rec["reason"]) if "reason" in rec else reason_of_message(status, rec["error"]),
            reference=rec.get("reference") or "",
        )


HEADER = ",".join(COLUMNS) + "\n"


def line(row: ManifestRow) -> str:
    """One row as the manifest's CSV line (with its newline): what dumps writes for it, so a
    manifest can be written row by row, from a sorted stream, without holding it."""
    buf = io.StringIO()
    csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n").writerow(row.record())
    return buf.getvalue()


def dumps(rows: Iterable[ManifestRow]) -> str:
    """Rows -> CSV text, sorted by source so reruns produce identical bytes."""
    return HEADER + "".join(line(row) for row in sorted(rows, key=lambda r: r.source))


# Columns that manifests of earlier versions lack; an index pointing at one still loads (its
# faces, with no ETag to check, are cropped again once; its reasons are read from its messages).
_ADDED_LATER = ("face_etag", "correction", "reason", "reference")

# How versions before the reason column began each message, for reading their manifests only:
# nothing decides on message text any more.
_OLD_MESSAGES = (
    ("photo not found", Reason.GONE),
    ("cannot read", Reason.READ_FAILED),
    ("detection failed", Reason.DETECTION_FAILED),
    ("too large to decode", Reason.TOO_LARGE),
    ("too small to detect", Reason.TOO_SMALL),
    ("cannot write face", Reason.WRITE_FAILED),
    ("refused: ", Reason.REFUSED_KEY),
)


def reason_of_message(status: Status, error: str) -> Reason:
    """The reason code of a row written before manifests had one."""
    if status == Status.EXCLUDED:
        return Reason.NO_USABLE_FACE
    if status != Status.ERROR:
        return Reason.NONE
    return next((reason for start, reason in _OLD_MESSAGES if error.startswith(start)), Reason.UNREADABLE)


def loads(text: str) -> list[ManifestRow]:
    return list(iter_rows(io.StringIO(text)))


def iter_rows(lines: Iterable[str]) -> Iterator[ManifestRow]:
    """The rows of a manifest read as a stream of lines (a text file, a decoded S3 body)."""
    reader = csv.DictReader(lines)
    missing = [c for c in COLUMNS if c not in (reader.fieldnames or []) and c not in _ADDED_LATER]
    if missing:
        raise ValueError(f"not a facecrop manifest: columns {', '.join(missing)} are missing")
    for rec in reader:
        yield ManifestRow.from_record(rec)


def parse_line(text: str) -> ManifestRow:
    """A row written by `line` (this version's columns)."""
    return ManifestRow.from_record(dict(zip(COLUMNS, next(csv.reader(io.StringIO(text))))))
