"""Bytes to pixels and back: decoding photos, cutting and encoding faces (OpenCV).

Decoding uses the same OpenCV reader as the notebook's `cv2.imread`, so pixels are the
same: EXIF orientation applied, greyscale/RGBA/CMYK/16-bit converted to 8-bit colour.
Anything it cannot read becomes a `BadPhoto` with a short reason instead of an exception
that would stop the batch.
"""

from __future__ import annotations

import io
import threading
from pathlib import PurePosixPath

import cv2
import numpy as np

from facecrop_ops.dataset.codes import Reason
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
    """A photo that cannot be used; str() is the short message kept in the manifest, `reason`
    the code decisions read."""

    def __init__(self, message: str, reason: Reason = Reason.UNREADABLE) -> None:
        super().__init__(message)
        self.reason = reason


def _format_of(data: bytes) -> str | None:
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WebP"
    for magic, name in _SIGNATURES:
        if data.startswith(magic):
            return name
    return None


def decode_rgb(data: bytes, max_pixels: int | None = None) -> np.ndarray:
    """Photo file bytes -> (H, W, 3) uint8 RGB. A photo whose header claims more than
    `max_pixels` is refused before decoding: a few KB can claim 60000 x 60000 (a "pixel bomb")
    and decoding would allocate gigabytes."""
    if not data:
        raise BadPhoto("empty file (0 bytes)")
    if max_pixels:
        size = header_size(data)
        if size is not None and size[0] * size[1] > max_pixels:
            raise BadPhoto(f"too large to decode: {size[0]}x{size[1]} px is {size[0] * size[1] / 1e6:.0f} megapixels, over "
                           f"max_megapixels {max_pixels / 1e6:g}: raise max_megapixels to crop it", Reason.TOO_LARGE)
    try:
        bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    except cv2.error as exc:  # OpenCV's own bound (2^30 pixels) and other refusals of the header
        raise BadPhoto(f"cannot decode: {str(exc).splitlines()[-1].split(': ', 1)[-1][:120]}") from None
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
        raise BadPhoto(f"cannot encode a face as {ext}", Reason.WRITE_FAILED)
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


_BOMB_CHECK = threading.Lock()


def header_size(source: bytes | str | None) -> tuple[int, int] | None:
    """(width, height) read from a photo's header (bytes or a file path), without decoding it;
    None when the header is unreadable (decoding will say why)."""
    from PIL import Image

    if not source:
        return None

    def read() -> tuple[int, int]:
        with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as im:
            return im.size

    try:
        return read()
    except Image.DecompressionBombError:
        # PIL refuses to open what it calls a bomb; only its size is wanted here, so open it
        # again without PIL's limit (nothing is decoded).
        with _BOMB_CHECK:
            limit, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
            try:
                return read()
            finally:
                Image.MAX_IMAGE_PIXELS = limit
    except Exception:  # noqa: BLE001 - not an image (decoding will say why)
        return None


_ROTATED = (5, 6, 7, 8)  # EXIF orientations that swap width and height
_SHOWN_AS_IS = ("JPEG", "PNG", "GIF", "BMP", "WEBP")  # formats every browser shows


def upright_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) of the photo as the pipeline sees it (EXIF orientation applied, as
    OpenCV's decoder does), from its header and EXIF alone: nothing is decoded. None when
    unreadable."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as im:
            w, h = im.size
            return (h, w) if im.getexif().get(0x0112) in _ROTATED else (w, h)
    except Exception:  # noqa: BLE001 - not an image
        return None


def display_copy(data: bytes, max_pixels: int) -> tuple[bytes, str]:
    """(bytes, media type) a browser shows the way the pipeline sees the photo: the file itself
    when a browser shows it upright already, else an upright JPEG (a rotated WebP or PNG is
    shown unrotated by browsers; TIFF not at all). Decoding is bounded by `max_pixels`."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as im:
            fmt, orientation = im.format, im.getexif().get(0x0112)
    except Exception:  # noqa: BLE001 - decoding below says why
        fmt, orientation = None, None
    if fmt in _SHOWN_AS_IS and orientation in (None, 1):
        return data, Image.MIME.get(fmt, "application/octet-stream")
    rgb = decode_rgb(data, max_pixels)
    return cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes(), "image/jpeg"


def pixel_count(source: bytes | str | None) -> int:
    """Width x height from the header; 0 when unknown (unreadable photos are cheap to hold)."""
    size = header_size(source)
    return 0 if size is None else size[0] * size[1]
