"""The fast engine against facenet-pytorch's own code: pieces bit for bit, boxes to the pixel."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from facenet_pytorch import MTCNN

from facecrop_dev import samples
from facecrop_ops.dataset.naming import CLASSES
from facecrop_ops.vision import mtcnn_fast


@pytest.mark.parametrize("kernel", [2, 3])
@pytest.mark.parametrize("shape", [(305, 229), (306, 230), (24, 24), (22, 22), (11, 11), (10, 13), (5, 4), (3, 3)])
@pytest.mark.parametrize("channels_last", [False, True])
def test_max_pool_equals_torch_bit_for_bit(kernel, shape, channels_last):
    x = torch.randn(3, 10, *shape)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    expected = F.max_pool2d(x, kernel, 2, ceil_mode=True)
    got = mtcnn_fast.ExactMaxPool2d(kernel, 2)(x)
    assert torch.equal(got, expected)
    assert got.is_contiguous(memory_format=torch.channels_last) == expected.is_contiguous(memory_format=torch.channels_last)


def random_batch(seed, h, w, n=2):
    return np.random.default_rng(seed).integers(0, 256, (n, h, w, 3), dtype=np.uint8)


@pytest.mark.parametrize(("h", "w", "out_h", "out_w"), [(512, 384, 308, 231), (512, 384, 20, 15), (97, 131, 41, 70), (60, 60, 60, 60)])
def test_pyramid_level_equals_torch_area_interpolation_bit_for_bit(h, w, out_h, out_w):
    batch = random_batch(h * w, h, w)
    expected = F.interpolate(torch.as_tensor(batch).permute(0, 3, 1, 2).float(), size=(out_h, out_w), mode="area")
    got = mtcnn_fast._Integral(batch, torch.device("cpu")).pyramid_level(out_h, out_w)
    assert torch.equal(got, expected)


def test_candidate_crops_equal_facenets_per_box_loop():
    batch = random_batch(7, 200, 150, n=3)
    rng = np.random.default_rng(3)
    k = 40
    y = rng.integers(1, 190, k).astype(np.int32)
    x = rng.integers(1, 140, k).astype(np.int32)
    ey = np.minimum(y + rng.integers(1, 120, k), 200).astype(np.int32)
    ex = np.minimum(x + rng.integers(1, 120, k), 150).astype(np.int32)
    inds = torch.as_tensor(rng.integers(0, 3, k))
    imgs = torch.as_tensor(batch).permute(0, 3, 1, 2).float()
    expected = torch.cat([
        F.interpolate(imgs[inds[i], :, y[i] - 1 : ey[i], x[i] - 1 : ex[i]].unsqueeze(0), size=(24, 24), mode="area")
        for i in range(k)
    ])
    got = mtcnn_fast._Integral(batch, torch.device("cpu")).candidates(inds, y, ey, x, ex, 24)
    assert torch.equal(got, expected)


@pytest.fixture(scope="module")
def portraits():
    photos = [samples.portrait(i, mask=samples.class_mask(CLASSES[i % 7])).rgb for i in range(28)]
    return photos


def test_detect_faces_gives_facenets_boxes(portraits):
    """Same faces found, float boxes within 1e-3 px, so the int() crop boxes are identical."""
    mtcnn = MTCNN(keep_all=True, device="cpu")
    nets = mtcnn_fast.load_nets(torch.device("cpu"))
    found_any = missed_any = False
    for start in range(0, len(portraits), 7):
        batch = portraits[start : start + 7]
        ref_boxes, ref_probs = mtcnn.detect(batch)
        with torch.no_grad():
            ours = mtcnn_fast.detect_faces(
                np.stack(batch), nets, min_face_size=20, thresholds=(0.6, 0.7, 0.7), factor=0.709, device=torch.device("cpu")
            )
        for ref, prob, got in zip(ref_boxes, ref_probs, ours):
            if ref is None:
                missed_any = True
                assert len(got) == 0
                continue
            found_any = True
            order = np.argsort((got[:, 2] - got[:, 0]) * (got[:, 3] - got[:, 1]))[::-1]
            got = got[order]
            ref = np.asarray(ref, dtype=np.float64)
            assert got.shape[0] == ref.shape[0]
            assert np.abs(got[:, :4] - ref).max() < 1e-3
            assert np.abs(got[:, 4] - np.asarray(prob, dtype=np.float64)).max() < 1e-4
            assert [int(v) for v in got[0, :4]] == [int(v) for v in ref[0]]
    assert found_any and missed_any  # the fixtures exercise both paths
