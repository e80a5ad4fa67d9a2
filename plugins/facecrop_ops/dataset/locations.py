"""Where things live in S3: URIs, images roots, face keys, run reports, published CSV names.

Pure string logic, so the layout rules are tested without a bucket:

    <source>/<split>/images/<rel>   ->  <dest>/<split>/faces/<rel>
    <source>/train_data.csv         ->  <dest>/train_face.csv
    facecrop's own objects          ->  <dest>/_facecrop/ (dataset.run_folder)
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import PurePosixPath

IMAGES, FACES = "images", "faces"


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


S3_KEY_BYTES = 1024  # the longest key S3 accepts


def face_key_problem(photo_rel: str, dest: S3Location) -> str | None:
    """Why a photo's face cannot be written safely under `dest` (naming the fix), or None. A face key must be one S3 accepts, must not resolve onto other
    objects when the bucket is synced to disk (`.` and `..` segments), and must never lie under
    an images folder, where the next run would take it for a photo and crop its own output."""
    split = split_images_root(photo_rel)
    if split is None:
        return "not under an images folder"
    if any(segment in (".", "..") for segment in photo_rel.split("/")):
        return "its key has a '.' or '..' segment, which resolves onto other files when the bucket is synced to disk: rename it"
    face = face_rel(*split)
    if IMAGES in face.split("/")[:-1]:
        return (f"its face {face} would lie in an 'images' folder and be taken for a photo by the next run: "
                "rename the inner 'images' folder")
    size = len(dest.key(face).encode())
    if size > S3_KEY_BYTES:
        return (f"its face's key would be {size} bytes, over S3's limit of {S3_KEY_BYTES}: choose a shorter "
                "dest_uri or shorten the photo's path")
    return None
