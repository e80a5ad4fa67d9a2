"""Decoding: every kind of photo a real bucket holds either decodes to RGB or is a BadPhoto."""

import io

import cv2
import numpy as np
import pytest
from PIL import Image

from facecrop_dev import samples
from facecrop_ops.vision.geometry import Box
from facecrop_ops.vision.imaging import BadPhoto, cut_face, decode_rgb, encode_face


@pytest.fixture(scope="module")
def rgb():
    return samples.portrait(0).rgb


def pil_bytes(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def test_jpeg_decodes_to_the_same_rgb_as_the_notebooks_imread(rgb, tmp_path):
    data = samples.encode(rgb)
    path = tmp_path / "x.jpg"
    path.write_bytes(data)
    expected = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
    assert np.array_equal(decode_rgb(data), expected)


def test_exif_orientation_is_applied(rgb):
    exif = Image.Image().getexif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    decoded = decode_rgb(pil_bytes(Image.fromarray(rgb), "JPEG", exif=exif, quality=95))
    assert decoded.shape == (384, 512, 3)  # was 512 x 384, displayed turned
    turned = np.rot90(rgb, k=-1)
    assert np.abs(decoded.astype(int) - turned).mean() < 3


def test_greyscale_becomes_three_equal_channels(rgb):
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    out = decode_rgb(cv2.imencode(".png", grey)[1].tobytes())
    assert out.shape == (512, 384, 3)
    assert np.array_equal(out[..., 0], grey) and np.array_equal(out[..., 2], grey)


def test_rgba_drops_alpha(rgb):
    rgba = np.dstack([rgb, np.full(rgb.shape[:2], 128, np.uint8)])
    out = decode_rgb(pil_bytes(Image.fromarray(rgba, "RGBA"), "PNG"))
    assert np.array_equal(out, rgb)


def test_cmyk_jpeg_becomes_rgb(rgb):
    out = decode_rgb(pil_bytes(Image.fromarray(rgb).convert("CMYK"), "JPEG", quality=95))
    assert out.shape == (512, 384, 3)
    assert np.abs(out.astype(int) - rgb).mean() < 8


def test_16_bit_png_becomes_8_bit(rgb):
    deep = rgb.astype(np.uint16) * 257
    out = decode_rgb(cv2.imencode(".png", deep[..., ::-1])[1].tobytes())
    assert out.dtype == np.uint8 and np.array_equal(out, rgb)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty file (0 bytes)"),
        (b"<html><body>404</body></html>", "not an image (unrecognised content)"),
        (b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X", "not an image (unrecognised content)"),
    ],
)
def test_non_images_are_bad_photos_with_a_reason(data, reason):
    with pytest.raises(BadPhoto, match=reason.replace("(", r"\(").replace(")", r"\)")):
        decode_rgb(data)


def test_truncated_jpeg_and_png_are_bad_photos(rgb):
    jpeg = samples.encode(rgb)
    png = samples.encode(rgb, ".png")
    with pytest.raises(BadPhoto, match="corrupt or truncated JPEG"):
        decode_rgb(jpeg[: len(jpeg) - 200])
    with pytest.raises(BadPhoto, match="corrupt or truncated PNG"):
        decode_rgb(png[: len(png) // 2])


def test_face_is_cut_resized_and_encoded_by_its_name(rgb):
    face = cut_face(rgb, Box(64, 86, 320, 426), (210, 280))
    assert face.shape == (280, 210, 3)
    jpg, png = encode_face(face, "a/faces/p/mask1.jpg"), encode_face(face, "a/faces/p/mask1.png")
    assert jpg[:3] == b"\xff\xd8\xff" and png[:4] == b"\x89PNG"
    assert np.array_equal(decode_rgb(png), face)
    assert np.abs(decode_rgb(jpg).astype(int) - face).mean() < 2


_DECODE_BOMBS = """
from facecrop_dev import hostile
from facecrop_ops.vision.imaging import BadPhoto, decode_rgb
for data in (hostile.jpeg_claiming(60000, 60000), hostile.jpeg_claiming(20000, 15000), hostile.png_claiming(30000, 30000)):
    try:
        decode_rgb(data, 50_000_000)
    except BadPhoto as exc:
        print(exc)
print(next(int(line.split()[1]) // 1024 for line in open("/proc/self/status") if line.startswith("VmHWM")))
"""


def test_a_photo_whose_header_claims_too_many_pixels_is_refused_before_decoding():
    import subprocess
    import sys

    from facecrop_dev import hostile

    out = subprocess.run([sys.executable, "-c", _DECODE_BOMBS], capture_output=True, text=True, check=True).stdout.splitlines()
    for line, size in zip(out, ("60000x60000", "20000x15000", "30000x30000")):
        assert line.startswith(f"too large to decode: {size} px") and line.endswith("over max_megapixels 50: raise max_megapixels to crop it")
    assert int(out[-1]) < 400  # MB of the whole process: nothing was allocated for the pixels (decoding 20000x15000 took 1.8 GB)
    with pytest.raises(BadPhoto, match="cannot decode"):  # no bound given: OpenCV's own refusal is still a BadPhoto
        decode_rgb(hostile.jpeg_claiming(60000, 60000))
