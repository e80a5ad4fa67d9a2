"""What a run will do, decided from the bucket listing alone: which keys are photos, which
CSVs to rewrite, and how photos are grouped into shards (one mapped task instance each).

Shards are folders packed in sorted order, so the same listing always gives the same shards
and a rerun writes the same objects; when crops depend on siblings a sitting is never split,
so a person's photos are cropped (and retried) together.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from facecrop_ops.dataset.locations import FACES, published_csv_name, split_images_root
from facecrop_ops.dataset.naming import folder_of, is_hidden, is_photo_name, sitting_order, sittings

# Airflow refuses to map more than [core] max_map_length (1024) instances; stay far below.
MAX_SHARDS_LIMIT = 512


@dataclass
class Listing:
    """Keys relative to the dataset root, sorted into what the run does with them."""

    photos: list[str] = field(default_factory=list)
    hidden: list[str] = field(default_factory=list)  # `._*` and dot-files under images/ and beside the CSVs
    not_photos: list[str] = field(default_factory=list)  # other extensions under images/
    faces: list[str] = field(default_factory=list)  # under a `faces` folder: outputs, never photos
    csvs: list[str] = field(default_factory=list)  # *.csv directly under the root, not ours
    images_roots: list[str] = field(default_factory=list)  # e.g. train/images/, eval/images/


def classify(rel_keys: Iterable[str]) -> Listing:
    out = Listing()
    roots = set()
    for rel in sorted(rel_keys):
        if "/" not in rel and rel.lower().endswith(".csv"):
            (out.hidden if is_hidden(rel) else out.csvs).append(rel)  # macOS leaves ._train_data.csv beside it
            continue
        split = split_images_root(rel)
        if split is None or rel.endswith("/"):
            continue  # outside every images folder (e.g. an earlier run's faces): not ours
        if FACES in split[0].split("/"):
            out.faces.append(rel)  # a face an earlier version wrote under a nested `images` folder
            continue
        roots.add(split[0])
        if is_hidden(rel):
            out.hidden.append(rel)
        elif is_photo_name(rel):
            out.photos.append(rel)
        else:
            out.not_photos.append(rel)
    out.images_roots = sorted(roots)
    # When faces are published beside the data, an earlier run's train_face.csv is listed too;
    # it is an output of train_data.csv, not an input of its own.
    outputs = {published_csv_name(name) for name in out.csvs}
    out.csvs = [name for name in out.csvs if name not in outputs]
    return out


def make_shards(photos: list[str], photos_per_shard: int, max_shards: int, *, whole_folders: bool = False) -> list[list[str]]:
    """Pack folders into shards of about `photos_per_shard` photos; if that would give more
    than `max_shards`, shards grow instead. With `whole_folders` (crops that depend on a
    person's other photos) a sitting (a folder holding a class-named photo, whatever its other
    files are called) is never cut: one bigger than a shard is a shard of its own, its
    reference photos first (the processor carries them through every chunk of it). Other
    folders (eval/images/ and folders of strangers) are cut as needed."""
    if photos_per_shard < 1 or not 1 <= max_shards <= MAX_SHARDS_LIMIT:
        raise ValueError(f"photos_per_shard must be >= 1 and max_shards 1..{MAX_SHARDS_LIMIT}")
    whole = sittings(photos) if whole_folders else set()
    folders: dict[str, list[str]] = {}
    for rel in sorted(photos):
        folder = folder_of(rel)
        folders.setdefault(folder if folder in whole else str(PurePosixPath(rel).parent), []).append(rel)
    groups = []
    for folder, folder_photos in folders.items():
        if folder in whole:
            groups.append(sorted(folder_photos, key=sitting_order))
            continue
        for i in range(0, len(folder_photos), photos_per_shard):
            groups.append(folder_photos[i : i + photos_per_shard])
    target = max(photos_per_shard, math.ceil(len(photos) / max_shards))
    shards: list[list[str]] = []
    for group in groups:
        if shards and len(shards[-1]) + len(group) <= target:
            shards[-1].extend(group)
        else:
            shards.append(list(group))
    while len(shards) > max_shards:  # folders that do not pack evenly: merge the smallest pairs
        i = min(range(len(shards) - 1), key=lambda j: len(shards[j]) + len(shards[j + 1]))
        shards[i : i + 2] = [shards[i] + shards[i + 1]]
    return shards
