"""Rewrite a dataset CSV to point at the faces. Pure: text and manifest rows in, text out.

A row's path is matched to its photo by the `<split>/images/` segment of a known images
root, whatever comes before it (`train/images/...`, `/data/train/images/...`,
`s3://bucket/raw/train/images/...`), never by a substring replace. The new path keeps
the row's own style; only that `images` segment becomes `faces`. An s3:// URI into the
source dataset is pointed at the face's real object, which differs when dest_uri does.
Rows whose photo is unreadable or unknown are left out and returned as rejects.
"""

from __future__ import annotations

import codecs
import csv
import io
import itertools
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TextIO

from facecrop_ops.dataset.codes import Reason, Status
from facecrop_ops.dataset.locations import S3Location, face_rel, split_images_root
from facecrop_ops.dataset.manifest import ManifestRow

REJECT_COLUMNS = ("csv", "line", "path", "reason")


class CsvError(ValueError):
    """The CSV cannot be rewritten at all (no path column): the run must stop."""


@dataclass(frozen=True)
class Reject:
    csv: str
    line: int
    path: str
    reason: str


@dataclass(frozen=True)
class Rewritten:
    text: str
    kept: int
    rejects: list[Reject]


BOM = "\ufeff"


def decode(data: bytes, encoding: str, csv_name: str) -> tuple[str, bool]:
    """(text, whether it began with a UTF-8 byte-order mark). A CSV that is not text in
    `encoding` stops the run with the fix, before anything is cropped or published."""
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as exc:
        raise _not_text(csv_name, encoding, data[exc.start], exc.start) from None
    bom = text.startswith(BOM)
    return (text[1:] if bom else text), bom


def _not_text(csv_name: str, encoding: str, byte: int, offset: int) -> CsvError:
    return CsvError(f"{csv_name} is not {encoding} text (byte 0x{byte:02x} at offset {offset}): set the csv_encoding "
                    "param to its encoding, e.g. cp949 for a CSV saved by Korean Excel, latin-1 or cp1252 for Western Excel")


def encode(text: str, encoding: str, bom: bool, csv_name: str) -> bytes:
    """The published CSV in its source's encoding, with its byte-order mark if it had one (Excel
    needs it to read UTF-8)."""
    try:
        return ((BOM if bom else "") + text).encode(encoding)
    except UnicodeEncodeError as exc:
        raise CsvError(f"a rewritten path of {csv_name} has {exc.object[exc.start:exc.end]!r}, which {encoding} cannot "
                       "hold: choose a dest_uri in plain ASCII") from None


def check_path_column(header: Sequence[str], path_column: str, csv_name: str) -> None:
    if path_column not in header:
        raise CsvError(
            f"{csv_name} has no column {path_column!r} (its columns: {', '.join(header) or 'none'}); "
            f"set the path_column param to the column that holds photo paths"
        )
    if header.count(path_column) > 1:
        raise CsvError(f"{csv_name} has {header.count(path_column)} columns named {path_column!r}: rename all but the "
                       "one that holds photo paths, or set the path_column param to another column")


def _match(path: str, images_roots: Sequence[str]) -> tuple[int, str, str] | None:
    """(offset of the root in `path`, root, rest) for the longest images root found in the
    path at a segment boundary."""
    best = None
    padded = "/" + path
    for root in images_roots:
        pos = padded.find("/" + root)
        if pos >= 0 and (best is None or len(root) > len(best[1])):
            best = (pos, root, padded[pos + 1 + len(root) :])
    return best


def face_path_for(path: str, images_roots: Sequence[str], source: S3Location, dest: S3Location) -> tuple[str, str] | None:
    """(photo key relative to the source root, the row's new path), or None if no root matches."""
    found = _match(path, images_roots)
    if found is None or not found[2]:
        return None
    pos, root, rest = found
    return root + rest, _new_path(path[:pos], root + rest, source, dest)


def _new_path(before: str, photo: str, source: S3Location, dest: S3Location) -> str:
    """The face's path in the row's own style: `before` is what came before the images root
    ("", "/data/", "s3://bucket/raw/"...); an s3:// URI into the dataset points at the face's
    real object under dest."""
    split = split_images_root(photo)
    face = face_rel(*split) if split else photo
    return dest.key_uri(face) if before == source.uri else before + face


def rewrite(
    text: str,
    *,
    csv_name: str,
    path_column: str,
    photos: Mapping[str, ManifestRow],
    images_roots: Sequence[str],
    source: S3Location,
    dest: S3Location,
) -> Rewritten:
    """rewrite_lines over a CSV held in memory and photos in a mapping."""
    by_nfc = {unicodedata.normalize("NFC", k): k for k in photos}

    def lookup(key: str) -> ManifestRow | None:
        row = photos.get(key)
        return row if row is not None else photos.get(by_nfc.get(unicodedata.normalize("NFC", key), key))

    out, rejects = io.StringIO(), []
    kept = rewrite_lines(io.StringIO(text.lstrip(BOM), newline=""), out, csv_name=csv_name, path_column=path_column,
                         lookup=lookup, images_roots=images_roots, source=source, dest=dest,
                         line_end=line_ending(text), on_reject=rejects.append)
    return Rewritten(out.getvalue(), kept, rejects)


def rewrite_lines(
    lines: Iterable[str],
    out: TextIO,
    *,
    csv_name: str,
    path_column: str,
    lookup: Callable[[str], ManifestRow | None],
    images_roots: Sequence[str],
    source: S3Location,
    dest: S3Location,
    line_end: str,
    on_reject: Callable[[Reject], None],
    encoding: str | None = None,
) -> int:
    """Write the CSV whose lines stream in to `out` with its path column pointed at the faces,
    row by row; `lookup` finds a photo's manifest row by its key (in another Unicode
    normalisation too). Rejected rows go to `on_reject`, and, given the `encoding` the CSV is
    published in, so do rows whose face's path it cannot hold (a photo named in NFD, from
    macOS, in a cp949 CSV). Returns how many rows were kept."""
    reader = csv.reader(lines)
    header = next(reader, [])
    check_path_column(header, path_column, csv_name)
    col = header.index(path_column)
    writer = csv.writer(out, lineterminator=line_end)
    writer.writerow(header)
    kept = 0
    for record in reader:
        if not record:
            continue
        path = record[col].strip() if col < len(record) else ""
        reason, new_path = _decide(path, lookup, images_roots, source, dest)
        if not reason and encoding is not None and not _holds(new_path, encoding):
            reason = (f"its face's path {new_path!r} cannot be written in {encoding}: publish the CSVs in utf-8 "
                      "(csv_encoding) or rename the photo")
        if reason:
            on_reject(Reject(csv_name, reader.line_num, path, reason))
            continue
        record[col] = new_path
        writer.writerow(record)
        kept += 1
    return kept


def _holds(text: str, encoding: str) -> bool:
    try:
        text.encode(encoding)
    except UnicodeEncodeError:
        return False
    return True


def check_destination(dest: S3Location, encoding: str, csv_name: str) -> None:
    """A destination whose name the CSVs' encoding cannot hold would reject every row: stop."""
    if not _holds(dest.uri, encoding):
        bad = next(c for c in dest.uri if not _holds(c, encoding))
        raise CsvError(f"a rewritten path of {csv_name} has {bad!r}, which {encoding} cannot hold: choose a dest_uri "
                       "in plain ASCII")


def decoded(chunks: Iterable[bytes], encoding: str, csv_name: str) -> Iterator[str]:
    """A CSV's text as its bytes stream in; a byte that is not `encoding` stops the run with the
    fix, naming it and its offset, as `decode` does for a CSV held whole."""
    decoder = codecs.getincrementaldecoder(encoding)()
    offset = 0
    for chunk in itertools.chain(chunks, [None]):
        pending = decoder.getstate()[0]
        try:
            text = decoder.decode(b"", final=True) if chunk is None else decoder.decode(chunk)
        except UnicodeDecodeError as exc:
            data = pending + (chunk or b"")
            raise _not_text(csv_name, encoding, data[exc.start], offset - len(pending) + exc.start) from None
        if chunk is not None:
            offset += len(chunk)
        if text:
            yield text


def lines(texts: Iterable[str]) -> Iterator[str]:
    """Text chunks as lines, each with its own line ending (what csv.reader takes)."""
    rest = ""
    for text in texts:
        rest += text
        parts = rest.split("\n")
        rest = parts.pop()
        for part in parts:
            yield part + "\n"
    if rest:
        yield rest


def _decide(path: str, lookup: Callable[[str], ManifestRow | None], images_roots: Sequence[str],
            source: S3Location, dest: S3Location) -> tuple[str, str]:
    """(why the row is rejected, "") or ("", its new path). A path spelt in another Unicode
    normalisation than its photo's key (NFC from Excel, NFD from macOS) finds that photo, the
    plan having refused two photos that differ only so; the face's path is then the photo's."""
    if not path:
        return "empty path", ""
    if path.startswith("s3://") and not path.startswith(source.uri):
        return f"an s3:// URI outside the dataset ({source.uri}): its face would not exist", ""
    found = _match(path, images_roots)
    if found is None or not found[2]:
        roots = ", ".join(images_roots) or "none found"
        return f"path is not under an images folder of the dataset ({roots})", ""
    pos, root, rest = found
    row = lookup(root + rest)
    if row is None:
        return "photo not found in the dataset (missing, hidden or not a photo file)", ""
    if row.status == Status.EXCLUDED:
        return row.error, ""
    if row.status == Status.ERROR:
        return (row.error if row.reason == Reason.REFUSED_KEY else f"photo unreadable: {row.error}"), ""
    return "", _new_path(path[:pos], row.source, source, dest)


def line_ending(text: str) -> str:
    """The CSV's own line ending (\\r\\n from Windows and Excel, else \\n): published CSVs keep it."""
    first = text.find("\n")
    return "\r\n" if first > 0 and text[first - 1] == "\r" else "\n"


def rejects_csv(rejects: Sequence[Reject]) -> str:
    """rejects.csv, a file of this project's that people open in spreadsheets: a cell from the
    data that a spreadsheet would run as a formula (=, +, -, @) is written as text."""
    return ",".join(REJECT_COLUMNS) + "\n" + "".join(reject_line(r) for r in rejects)


def reject_line(r: Reject) -> str:
    """One row of rejects.csv, with its newline (the file is written a row at a time)."""
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerow([inert(r.csv), r.line, inert(r.path), inert(r.reason)])
    return out.getvalue()


def inert(cell: str) -> str:
    """OWASP's advice for CSV injection: a leading quote keeps a formula as text."""
    return "'" + cell if cell[:1] in ("=", "+", "-", "@", "\t", "\r") else cell
