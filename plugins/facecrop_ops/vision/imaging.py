"""Bytes to pixels and back: decoding photos, cutting and encoding faces (OpenCV).

Decoding uses the same OpenCV reader as the notebook's `cv2.imread`, so pixels are the
same: EXIF orientation applied, greyscale/RGBA/CMYK/16-bit converted to 8-bit colour.
Anything it cannot read becomes a `BadPhoto` with a short reason instead of an exception
that would stop the batch.
"""

from __future__ import annotations

import io
from pathlib import PurePosixPath

import cv2
import numpy as np

from facecrop_ops.vision.geometry import Box

_INTERPOLATION = {
    "area": cv2.INTER_AREA,
    "linear": cv2.INTER_LINEAR,
    "cubic": cv2.INTER_CUBIC,
    "nearest": cv2.INTER_NEAREST,
    "lanczos": cv2.INTER_LANCZOS4,
}

_SIGNATURES = (
    (b"\xff\xd8\xff", "JPEG"),
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"BM", "BMP"),
    (b"GIF8", "GIF"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
)


class BadPhoto(Exception):
    """A photo that cannot be used; str() is the short reason kept in the manifest."""


def _format_of(data: bytes) -> str | None:
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WebP"
    for magic, name in _SIGNATURES:
        if data.startswith(magic):
            return name
    return None


def decode_rgb(data: bytes) -> np.ndarray:
    """Photo file bytes -> (H, W, 3) uint8 RGB."""
    if not data:
        raise BadPhoto("empty file (0 bytes)")
    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if bgr is None:
        fmt = _format_of(data)
        if fmt is None:
            raise BadPhoto("not an image (unrecognised content)")
        if fmt == "GIF":
            raise BadPhoto("unsupported format (GIF)")
        raise BadPhoto(f"corrupt or truncated {fmt} file")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def encode_face(rgb: np.ndarray, name: str, jpeg_quality: int = 95) -> bytes:
    """Encode in the format the face's file name says (faces keep their photo's name, so a
    .png photo gives a PNG face, as the notebook's `cv2.imwrite` did)."""
    ext = PurePosixPath(name).suffix.lower() or ".jpg"
    params = [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality] if ext in (".jpg", ".jpeg") else []
    ok, buf = cv2.imencode(ext, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), params)
    if not ok:
        raise BadPhoto(f"cannot encode a face as {ext}")
    return buf.tobytes()


def cut_face(rgb: np.ndarray, box: Box, size: tuple[int, int], interpolation: str = "area") -> np.ndarray:
    """`img[y1:y2, x1:x2]` resized to size (W, H)."""
    crop = rgb[box.y1 : box.y2, box.x1 : box.x2]
    return cv2.resize(crop, size, interpolation=_INTERPOLATION[interpolation])


def thumbnail(data: bytes, width: int, quality: int = 80) -> bytes:
    """A small JPEG of a face file, for the review page's contact sheets."""
    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if bgr is None:
        raise BadPhoto("not an image (unrecognised content)")
    h, w = bgr.shape[:2]
    small = cv2.resize(bgr, (width, max(1, round(h * width / w))), interpolation=cv2.INTER_AREA)
    return cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, quality])[1].tobytes()


def pixel_count(source: bytes | str | None) -> int:
    """Width x height read from a photo's header (bytes or a file path), without decoding it;
    0 when unknown (unreadable photos are cheap to hold)."""
    from PIL import Image

    if not source:
        return 0
    try:
        with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as im:
            width, height = im.size
    except Image.DecompressionBombError:
        return 10**12  # more than any bound: held alone
    except Exception:  # noqa: BLE001 - not an image (decoding will say why)
        return 0
    return width * height
