"""Where things live in S3: URIs, images roots, face keys, run reports, published CSV names.

Pure string logic, so the layout rules are tested without a bucket:

    <source>/<split>/images/<rel>   ->  <dest>/<split>/faces/<rel>
    <source>/train_data.csv         ->  <dest>/train_face.csv
    reports                         ->  <dest>/_facecrop/runs/<run_id>/
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import PurePosixPath

IMAGES, FACES = "images", "faces"
REPORTS_DIR = "_facecrop/runs"


@dataclass(frozen=True)
class S3Location:
    """A bucket and a key prefix ("" or ending in "/")."""

    bucket: str
    prefix: str

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    def key(self, rel: str) -> str:
        return self.prefix + rel

    def rel(self, key: str) -> str:
        if not key.startswith(self.prefix):
            raise ValueError(f"{key} is not under {self.uri}")
        return key[len(self.prefix) :]

    def child(self, rel_dir: str) -> S3Location:
        return S3Location(self.bucket, self.prefix + rel_dir.strip("/") + "/")

    def key_uri(self, rel: str) -> str:
        return f"s3://{self.bucket}/{self.key(rel)}"


_BUCKET = re.compile(r"[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]")


def parse_s3_uri(uri: str, what: str = "URI") -> S3Location:
    """`s3://bucket[/prefix]` -> S3Location; anything else is refused with the expected form."""
    m = re.fullmatch(r"s3://([^/]+)(?:/(.*))?", uri.strip()) if isinstance(uri, str) else None
    if not m or not _BUCKET.fullmatch(m.group(1)):
        raise ValueError(f"{what} must look like s3://bucket/prefix (got {uri!r})")
    prefix = (m.group(2) or "").strip("/")
    return S3Location(m.group(1), prefix + "/" if prefix else "")


def split_images_root(rel: str) -> tuple[str, str] | None:
    """`train/images/p/mask1.jpg` -> (`train/images/`, `p/mask1.jpg`): the images root is the
    path up to its first `images` segment. None for a path outside any images folder."""
    parts = rel.split("/")
    for i, part in enumerate(parts[:-1]):
        if part == IMAGES:
            return "/".join(parts[: i + 1]) + "/", "/".join(parts[i + 1 :])
    return None


def face_rel(images_root: str, rest: str) -> str:
    """`train/images/` + `p/mask1.jpg` -> `train/faces/p/mask1.jpg`."""
    return images_root[: -len(IMAGES) - 1] + FACES + "/" + rest


def published_csv_name(name: str) -> str:
    """train_data.csv -> train_face.csv; labels.csv -> labels_face.csv."""
    path = PurePosixPath(name)
    stem = path.stem[: -len("_data")] if path.stem.endswith("_data") else path.stem
    return f"{stem}_face{path.suffix or '.csv'}"


def safe_run_id(run_id: str) -> str:
    """Run ids carry ':' and '+' (manual__2026-11-28T10:00:00+00:00); keep keys portable."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", run_id)


def run_dir(dest: S3Location, run_id: str) -> S3Location:
    return dest.child(f"{REPORTS_DIR}/{safe_run_id(run_id)}")
