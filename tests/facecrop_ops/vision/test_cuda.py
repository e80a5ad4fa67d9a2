"""The CUDA path: run only where a GPU is (benchmarks/gpu_check.sh runs them on one);
skipped with the reason elsewhere, CI included."""

import numpy as np
import pytest
import torch

from facecrop_dev import samples
from facecrop_ops.config.crop import Settings
from facecrop_ops.dataset.naming import CLASSES, face_path
from facecrop_ops.vision.detector import Detector
from facecrop_ops.vision.imaging import decode_rgb
from facecrop_ops.vision.processor import Photo, crop_photos

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU: run benchmarks/gpu_check.sh on one")


@pytest.fixture(scope="module")
def portraits():
    """Every class, masked and bare, 384 x 512."""
    return [samples.portrait(i, mask=samples.class_mask(CLASSES[i % 7])).rgb for i in range(56)]


def _boxes(detector, images):
    return [None if d is None else d.box for d in detector.detect(images)]


def test_the_fast_engine_finds_facenets_boxes_on_the_gpu(portraits):
    fast = _boxes(Detector(Settings(device="cuda", engine="fast")), portraits)
    facenet = _boxes(Detector(Settings(device="cuda", engine="facenet")), portraits)
    assert [b is None for b in fast] == [b is None for b in facenet]
    for a, b in zip(fast, facenet):
        if a is not None:
            assert np.allclose(a, b, atol=1e-2)


def test_gpu_crops_equal_cpu_crops(portraits):
    photos = [Photo(f"train/images/p{i // 7}/{CLASSES[i % 7]}.jpg", face_path(f"train/images/p{i // 7}/{CLASSES[i % 7]}.jpg"),
                    data=samples.encode(rgb)) for i, rgb in enumerate(portraits)]
    gpu = [r.row.crop for r in crop_photos(photos, Settings(device="cuda"))]
    cpu = [r.row.crop for r in crop_photos(photos, Settings(device="cpu", workers=1))]
    assert sum(g != c for g, c in zip(gpu, cpu)) <= max(1, len(photos) // 100)  # float rounding may move one box in 100


def test_mixed_sizes_and_a_batch_larger_than_memory_would_like(portraits):
    sizes = [(384, 512), (512, 384), (768, 1024)]
    mixed = [samples.portrait(i, size=sizes[i % 3]).rgb for i in range(24)]
    detector = Detector(Settings(device="cuda", batch_size=256))
    together = _boxes(detector, mixed + portraits * 4)
    alone = [_boxes(detector, [img])[0] for img in mixed]
    for a, b in zip(together[: len(mixed)], alone):
        assert (a is None) == (b is None) and (a is None or np.allclose(a, b, atol=1e-2))
    assert len(together) == len(mixed) + 4 * len(portraits)


def test_a_gpu_fault_on_one_photo_costs_only_that_photo(monkeypatch, portraits):
    photos = [Photo(f"x/{i}.jpg", f"y/{i}.jpg", data=samples.encode(rgb)) for i, rgb in enumerate(portraits[:8])]
    poison = decode_rgb(photos[3].data)
    real = Detector.detect

    def flaky(self, images):
        if any(img.shape == poison.shape and np.array_equal(img, poison) for img in images):
            raise RuntimeError("CUDA error: an illegal memory access was encountered")
        return real(self, images)

    monkeypatch.setattr(Detector, "detect", flaky)
    rows = [r.row for r in crop_photos(photos, Settings(device="cuda"))]
    assert [r.source for r in rows if r.status == "error"] == ["x/3.jpg"]
