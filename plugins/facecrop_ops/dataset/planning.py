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

from facecrop_ops.dataset.locations import FACES, published_csv_name, split_images_root
from facecrop_ops.dataset.naming import folder_of, is_hidden, is_photo_name, sitting_order, sittings, split_name

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


# What a key of the source listing is to the run (classify_key).
PHOTO, HIDDEN, NOT_PHOTO, FACE, CSV = "photo", "hidden", "not_photo", "face", "csv"


def classify_key(rel: str) -> tuple[str, str] | None:
    """(what the key is, its images root, "" for a CSV), or None for a key the run ignores
    (outside every images folder, e.g. an earlier run's faces). One key at a time, so a listing
    of any size is sorted as it streams."""
    if "/" not in rel and rel.lower().endswith(".csv"):
        return (HIDDEN if is_hidden(rel) else CSV), ""  # macOS leaves ._train_data.csv beside it
    split = split_images_root(rel)
    if split is None or rel.endswith("/"):
        return None
    if FACES in split[0].split("/"):
        return FACE, split[0]  # a face an earlier version wrote under a nested `images` folder
    if is_hidden(rel):
        return HIDDEN, split[0]
    return (PHOTO if is_photo_name(rel) else NOT_PHOTO), split[0]


def source_csvs(names: Iterable[str]) -> list[str]:
    """The CSVs to rewrite among those directly under the root: when faces are published beside
    the data, an earlier run's train_face.csv is listed too; it is an output, not an input."""
    names = list(names)
    outputs = {published_csv_name(name) for name in names}
    return [name for name in names if name not in outputs]


def classify(rel_keys: Iterable[str]) -> Listing:
    out = Listing()
    roots = set()
    lists = {PHOTO: out.photos, HIDDEN: out.hidden, NOT_PHOTO: out.not_photos, FACE: out.faces, CSV: out.csvs}
    for rel in sorted(rel_keys):
        kind = classify_key(rel)
        if kind is None:
            continue
        lists[kind[0]].append(rel)
        if kind[0] in (PHOTO, HIDDEN, NOT_PHOTO) and kind[1]:
            roots.add(kind[1])
    out.images_roots = sorted(roots)
    out.csvs = source_csvs(out.csvs)
    return out


def shard_group(rel: str, whole: set[str], photos_per_shard: int, index_in_parent: int) -> str:
    """The group a photo is packed with: its sitting, when crops depend on siblings and it has
    one (never cut); else its folder, cut every `photos_per_shard` photos (`index_in_parent` is
    its place among its folder's photos in sorted order)."""
    folder = folder_of(rel)
    if folder in whole:
        return "s:" + folder
    return f"f:{split_name(rel)[0]}#{index_in_parent // photos_per_shard}"


def shard_target(photos: int, photos_per_shard: int, max_shards: int) -> int:
    if photos_per_shard < 1 or not 1 <= max_shards <= MAX_SHARDS_LIMIT:
        raise ValueError(f"photos_per_shard must be >= 1 and max_shards 1..{MAX_SHARDS_LIMIT}")
    return max(photos_per_shard, math.ceil(photos / max_shards))


def pack(group_sizes: Iterable[int], target: int, max_shards: int) -> list[int]:
    """Shard sizes for groups in order: a shard takes whole groups while they fit `target`; if
    that gives more than `max_shards`, the adjacent pair of smallest total merges, until it
    does not. Sizes only: the photos themselves stream past afterwards."""
    shards: list[int] = []
    for size in group_sizes:
        if shards and shards[-1] + size <= target:
            shards[-1] += size
        else:
            shards.append(size)
    while len(shards) > max_shards:  # folders that do not pack evenly: merge the smallest pairs
        i = min(range(len(shards) - 1), key=lambda j: shards[j] + shards[j + 1])
        shards[i : i + 2] = [shards[i] + shards[i + 1]]
    return shards


def make_shards(photos: list[str], photos_per_shard: int, max_shards: int, *, whole_folders: bool = False) -> list[list[str]]:
    """Pack folders into shards of about `photos_per_shard` photos; if that would give more
    than `max_shards`, shards grow instead. With `whole_folders` (crops that depend on a
    person's other photos) a sitting (a folder holding a class-named photo, whatever its other
    files are called) is never cut: one bigger than a shard is a shard of its own, its
    reference photos first (the processor carries them through every chunk of it). Other
    folders (eval/images/ and folders of strangers) are cut as needed. Groups go in the order
    of their first photo; the plan does the same on a table on disk."""
    target = shard_target(len(photos), photos_per_shard, max_shards)
    whole = sittings(photos) if whole_folders else set()
    seen: dict[str, int] = {}
    groups: dict[str, list[str]] = {}
    for rel in sorted(photos):
        parent = split_name(rel)[0]
        index = seen[parent] = seen.get(parent, -1) + 1
        groups.setdefault(shard_group(rel, whole, photos_per_shard, index), []).append(rel)
    ordered = [sorted(g, key=sitting_order) if key.startswith("s:") else g for key, g in groups.items()]
    flat = [rel for g in ordered for rel in g]
    shards, start = [], 0
    for size in pack((len(g) for g in ordered), target, max_shards):
        shards.append(flat[start : start + size])
        start += size
    return shards
