"""What a file's path says: is it a photo, what class is it, where does its face go."""

from __future__ import annotations

from pathlib import PurePosixPath

from facecrop_ops.dataset.locations import face_rel, split_images_root

PHOTO_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})
CLASSES = ("mask1", "mask2", "mask3", "mask4", "mask5", "incorrect_mask", "normal")
UNLABELED = "unlabeled"


def is_hidden(path: str) -> bool:
    """macOS `._*` resource forks, `.DS_Store` and other dot-files: never photos."""
    return PurePosixPath(path).name.startswith(".")


def is_photo_name(path: str) -> bool:
    """Judged by the extension only; whether the bytes are really a photo is decoding's job."""
    return PurePosixPath(path).suffix.lower() in PHOTO_EXTENSIONS


def person_folder(path: str) -> str | None:
    """A class-named photo's folder below an images folder (train/images/<person>/): one
    person's sitting, whose photos may lend each other their face box. None for photos
    directly in an images folder (eval/images/<hash>.jpg are strangers) or without a class."""
    parent = PurePosixPath(path).parent
    if photo_class(path) == UNLABELED or parent.name in ("", "images"):
        return None
    return str(parent)


def photo_class(path: str) -> str:
    """A train photo's class is its file stem (mask1..mask5, incorrect_mask, normal); eval
    photos and anything else are `unlabeled`."""
    stem = PurePosixPath(path).stem
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
    ext = PurePosixPath(path).suffix.lower()
    return {
        ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png", ".bmp": "image/bmp",
        ".webp": "image/webp", ".tif": "image/tiff", ".tiff": "image/tiff",
    }.get(ext, "application/octet-stream")
