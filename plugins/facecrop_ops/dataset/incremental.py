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
    """`etags`: this run's photos (source key -> ETag); `previous`: the index's rows (None
    without an index); `faces`: the destination's face objects (key -> ETag). A row is reused
    when its photo's ETag is the same and its face is the very object it uploaded (same
    ETag: a face another run overwrote meanwhile is not trusted). Without `reuse` (other
    settings, a full recrop) nothing is, but the deleted photos are still found. With
    `whole_folders` (crops that depend on a person's other photos), a person folder is reused
    whole or cropped whole, a deleted photo counting as a change. `corrections` maps photos to
    the id of the reviewer's correction that applies to them now: a row made under another (or
    none) is cropped again, so a run recrops exactly the photos whose correction changed.
    `left_out` are the rows the plan made for photos it does not crop (refused, or excluded by
    a reviewer): they are not deleted, and with `whole_folders` they change their folder only
    when their row differs from the last run's."""
    applied = corrections or {}
    aside = left_out or {}
    last = {row.source: row for row in previous or ()}
    keep: dict[str, ManifestRow] = {}
    for key, etag in etags.items() if reuse else ():
        row = last.get(key)
        if row is None or row.etag != etag or row.correction != applied.get(key, ""):
            continue
        if row.status == Status.ERROR:
            if row.reason not in RETRIED:
                keep[key] = row
        elif row.face_etag and faces.get(row.output) == row.face_etag:
            keep[key] = row
    gone = [row for key, row in last.items() if key not in etags and key not in aside]
    if whole_folders:
        together = sittings([*etags, *aside, *last])

        def sitting(key: str) -> str | None:
            folder = folder_of(key)
            return folder if folder in together else None

        changed = {sitting(k) for k in etags if k not in keep} | {sitting(r.source) for r in gone}
        changed |= {sitting(k) for k, row in aside.items() if _state(last.get(k)) != _state(row)}
        changed.discard(None)  # photos outside sittings (eval/images/x.jpg, strangers) stand alone
        keep = {k: row for k, row in keep.items() if sitting(k) not in changed}
    return Decision(
        reused=[replace(row, reused=True) for row in keep.values()],
        todo=sorted(k for k in etags if k not in keep),
        gone=gone,
    )


def _state(row: ManifestRow | None) -> tuple[Status, Reason, str] | None:
    """What a left-out photo's row says about it, for telling whether it changed."""
    return None if row is None else (row.status, row.reason, row.correction)
