"""Which photos a run can take from the last one instead of cropping them again (pure).

The index is the manifest of the last run that published over this destination, found
through `<dest>/_facecrop/index.json` and kept only when that run used the same face-shaping
settings. A photo is reused when its source object is the same (ETag) and, unless it was
unreadable, its face still exists in the destination: what the index says is checked against
the bucket, so a crashed run, a deleted face or two runs at once can never make a run trust
a face that is not there.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, replace

from .manifest import ERROR, ManifestRow
from .naming import person_folder

INDEX = "_facecrop/index.json"  # under dest_uri


@dataclass(frozen=True)
class Decision:
    reused: list[ManifestRow]  # rows taken as they are (marked reused)
    todo: list[str]  # photos to crop, sorted
    gone: list[ManifestRow]  # the last run's rows whose photo is no longer in the bucket


def decide(
    etags: Mapping[str, str],
    previous: Sequence[ManifestRow] | None,
    faces: Collection[str],
    *,
    whole_folders: bool = False,
) -> Decision:
    """`etags`: this run's photos (source key -> ETag); `previous`: the index's rows, or None
    for a full run; `faces`: the face keys that exist in the destination. With
    `whole_folders` (crops that depend on a person's other photos), a person folder is
    reused whole or cropped whole."""
    last = {row.source: row for row in previous or ()}
    keep: dict[str, ManifestRow] = {}
    for key, etag in etags.items():
        row = last.get(key)
        if row is not None and row.etag == etag and (row.status == ERROR or row.output in faces):
            keep[key] = row
    if whole_folders:
        changed = {person_folder(k) for k in etags if k not in keep} - {None}
        keep = {k: row for k, row in keep.items() if person_folder(k) not in changed}
    return Decision(
        reused=[replace(row, reused=True) for row in keep.values()],
        todo=sorted(k for k in etags if k not in keep),
        gone=[row for key, row in last.items() if key not in etags],
    )
