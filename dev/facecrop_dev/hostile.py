"""Objects a careless user or an attacker puts in a bucket, for the tests that prove one bad
object never fails a run: photos whose header claims far more pixels than they hold, and CSVs
in the encodings and shapes spreadsheets write."""

from __future__ import annotations

import struct
import zlib

import numpy as np


def jpeg_claiming(width: int, height: int) -> bytes:
    """A ~2.5 KB JPEG whose frame header claims width x height (a "pixel bomb")."""
    import cv2

    data = bytearray(cv2.imencode(".jpg", np.full((64, 64, 3), 128, np.uint8))[1].tobytes())
    sof = data.find(b"\xff\xc0")  # baseline frame header: length, precision, height, width
    return bytes(data[: sof + 5] + struct.pack(">HH", height, width) + data[sof + 9 :])


def png_claiming(width: int, height: int) -> bytes:
    """A small PNG whose header claims width x height greyscale pixels, with the first rows' data."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    rows = zlib.compress(b"\x00" * (width + 1) * 16, 9)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", rows) + chunk(b"IEND", b""))
