"""What a file's path says: is it a photo, what class is it, where does its face go."""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from pathlib import PurePosixPath

from facecrop_ops.dataset.locations import face_rel, split_images_root

PHOTO_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})
CLASSES = ("mask1", "mask2", "mask3", "mask4", "mask5", "incorrect_mask", "normal")
UNLABELED = "unlabeled"


def split_name(path: str) -> tuple[str, str]:
    """(parent, name) as PurePosixPath gives them, by string operations for a plain key: the
    control plane asks this of every photo several times, and a PurePosixPath costs ~30x more."""
    if path and "//" not in path and "/." not in path and not path.startswith((".", "/")) and not path.endswith("/"):
        parent, _, name = path.rpartition("/")
        return parent or ".", name
    pure = PurePosixPath(path)
    return str(pure.parent), pure.name


def _stem_suffix(name: str) -> tuple[str, str]:
    """PurePosixPath's stem and suffix of a file name."""
    dot = name.rfind(".")
    if 0 < dot < len(name) - 1:
        return name[:dot], name[dot:]
    return name, ""


def is_hidden(path: str) -> bool:
    """macOS `._*` resource forks, `.DS_Store` and other dot-files: never photos."""
    return split_name(path)[1].startswith(".")


def is_photo_name(path: str) -> bool:
    """Judged by the extension only; whether the bytes are really a photo is decoding's job."""
    return _stem_suffix(split_name(path)[1])[1].lower() in PHOTO_EXTENSIONS


def folder_of(path: str) -> str | None:
    """The folder a photo lies in below an images folder (train/images/<person>/), in Unicode
    NFC: macOS writes names in NFD, Windows and Excel in NFC, and a folder spelt both ways is
    one folder. None for a photo directly in an images folder (eval/images/<hash>.jpg)."""
    parent = split_name(path)[0]
    if split_name(parent)[1] in ("", "images") or split_images_root(path) is None:
        return None
    return unicodedata.normalize("NFC", parent)


def sittings(paths: Iterable[str]) -> set[str]:
    """The folders that are one person's sitting: those holding a class-named photo. Their
    photos may lend each other a face box, so they are cropped together whatever their number
    or names; a folder of strangers (no class-named photo) never is."""
    return {folder for p in paths if photo_class(p) != UNLABELED and (folder := folder_of(p)) is not None}


# A sitting's photos whose face other photos borrow (vision.rescue) come first in its order,
# so that every part of a sitting too big for one chunk can carry them.
REFERENCE_CLASSES = ("normal", "incorrect_mask")


def sitting_order(path: str) -> tuple[str, int, str]:
    """Sort key: by folder, a sitting's reference photos first, then by name."""
    cls = photo_class(path)
    rank = REFERENCE_CLASSES.index(cls) if cls in REFERENCE_CLASSES else len(REFERENCE_CLASSES)
    return (folder_of(path) or "", rank, path)


def photo_class(path: str) -> str:
    """A train photo's class is its file stem (mask1..mask5, incorrect_mask, normal); eval
    photos and anything else are `unlabeled`."""
    stem = _stem_suffix(split_name(path)[1])[0]
    return stem if stem in CLASSES else UNLABELED


def face_path(path: str) -> str:
    """The face's path: the same path with its first `images` segment replaced by `faces`.

    Only a whole segment is replaced (the notebook's `str.replace` also rewrote
    `my_images_v2/` and file names). A path without such a segment is returned unchanged;
    callers that write next to the photos must refuse that case.
    """
    split = split_images_root(path)
    return path if split is None else face_rel(*split)


def content_type(path: str) -> str:
    """MIME type of a face file, from its extension (faces keep their photo's name)."""
    ext = _stem_suffix(split_name(path)[1])[1].lower()
    return {
        ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png", ".bmp": "image/bmp",
        ".webp": "image/webp", ".tif": "image/tiff", ".tiff": "image/tiff",
    }.get(ext, "application/octet-stream")
