"""Which photos a run can take from the last one instead of cropping them again (pure).

The index is the manifest of the last run that published over this destination, found
through `<dest>/_facecrop/index.json`; its faces are reused only when that run used the same
face-shaping settings. A photo is reused when its source object is the same (ETag) and its
face is still the object that run uploaded (ETag again): what the index says is checked
against the bucket, so a crashed run, a run with other settings, a deleted face or two runs
at once can never make a run trust a face that is not what it claims.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from facecrop_ops.dataset.codes import RETRIED, Reason, Status
from facecrop_ops.dataset.manifest import ManifestRow
from facecrop_ops.dataset.naming import folder_of, sittings


@dataclass(frozen=True)
class Decision:
    reused: list[ManifestRow]  # rows taken as they are (marked reused)
    todo: list[str]  # photos to crop, sorted
    gone: list[ManifestRow]  # the last run's rows whose photo is no longer in the bucket


@dataclass(frozen=True)
class Entry:
    """One key as the plan sees it: this run's photo (`etag`), the last run's row for it
    (`previous`), that row's face as the destination holds it now (`face_etag`), the id of
    the reviewer's correction that applies now, and the plan's own row for a photo it does not
    crop (`left_out`: refused, too large, or excluded by a reviewer)."""

    source: str
    etag: str | None = None
    previous: ManifestRow | None = None
    face_etag: str | None = None
    correction: str = ""
    left_out: ManifestRow | None = None


def decide_group(entries: Sequence[Entry], *, reuse: bool = True, whole_folders: bool = False) -> Decision:
    """The decision for one folder's keys (the plan streams folders one at a time). A row is
    reused when its photo's ETag is the same, it was made under the correction that applies now
    (none, or the same one), and its face is the very object it uploaded (same ETag: a face
    another run overwrote meanwhile is not trusted); an error row is, unless its reason is one a
    retry may cure. Without `reuse` (other settings, a full recrop) nothing is, but deleted
    photos are still found. With `whole_folders` (crops that depend on a person's other
    photos), a sitting is reused whole or cropped whole: a photo cropped again, a deleted one,
    or a left-out photo whose row changed, changes it."""
    keep: dict[str, ManifestRow] = {}
    for e in entries:
        row = e.previous
        if not reuse or e.etag is None or row is None or row.etag != e.etag or row.correction != e.correction:
            continue
        if row.status == Status.ERROR:
            if row.reason not in RETRIED:
                keep[e.source] = row
        elif row.face_etag and e.face_etag == row.face_etag:
            keep[e.source] = row
    gone = [e.previous for e in entries if e.previous is not None and e.etag is None and e.left_out is None]
    folder = folder_of(entries[0].source) if entries else None
    if whole_folders and folder is not None and sittings(e.source for e in entries):
        changed = (any(e.etag is not None and e.source not in keep for e in entries) or bool(gone)
                   or any(e.left_out is not None and _state(e.previous) != _state(e.left_out) for e in entries))
        if changed:
            keep = {}
    return Decision(
        reused=[replace(row, reused=True) for row in keep.values()],
        todo=sorted(e.source for e in entries if e.etag is not None and e.source not in keep),
        gone=gone,
    )


def decide(
    etags: Mapping[str, str],
    previous: Sequence[ManifestRow] | None,
    faces: Mapping[str, str],
    *,
    reuse: bool = True,
    whole_folders: bool = False,
    corrections: Mapping[str, str] | None = None,
    left_out: Mapping[str, ManifestRow] | None = None,
) -> Decision:
    """decide_group over a listing held in memory: `etags`: this run's photos (source key ->
    ETag); `previous`: the index's rows (None without an index); `faces`: the destination's
    face objects (key -> ETag); `corrections`: the id of the correction that applies to each
    photo now; `left_out`: the plan's rows for the photos it does not crop. Folders are decided
    one by one, as the plan does on its table on disk."""
    applied, aside = corrections or {}, left_out or {}
    last = {row.source: row for row in previous or ()}
    groups: dict[str | None, list[Entry]] = {}
    for key in sorted({*etags, *last, *aside}):
        row = last.get(key)
        entry = Entry(key, etags.get(key), row, faces.get(row.output) if row is not None and row.output else None,
                      applied.get(key, ""), aside.get(key))
        groups.setdefault(folder_of(key) if whole_folders else key, []).append(entry)
    parts = [decide_group(group, reuse=reuse, whole_folders=whole_folders) for group in groups.values()]
    return Decision(reused=[r for d in parts for r in d.reused], todo=sorted(k for d in parts for k in d.todo),
                    gone=[r for d in parts for r in d.gone])


def _state(row: ManifestRow | None) -> tuple[Status, Reason, str] | None:
    """What a left-out photo's row says about it, for telling whether it changed."""
    return None if row is None else (row.status, row.reason, row.correction)
