"""facenet-pytorch's MTCNN detection, made faster without changing a single output bit.

Profiling `MTCNN.detect` on our 384 x 512 portraits (one torch thread) puts most of its time
in two pooling kernels, not in the networks' convolutions:

* the image pyramid and the R-Net/O-Net candidate crops use `interpolate(mode="area")`
  (adaptive average pooling), once per scale and once per candidate box in a Python loop;
* the nets' `MaxPool2d(ceil_mode=True)` layers, whose CPU kernel is slow on these shapes.

Both can be computed exactly another way. The input pixels are integers (uint8), so every
pooling window's sum is an integer below 2**24 and is exact in float32 in any order: one
integral image per photo gives all window sums of every pyramid level and every candidate
crop with four gathers, and dividing by the window's height then width reproduces torch's
kernel bit for bit. A max is exact in any order, so strided `torch.maximum` over the kernel
offsets replaces max pooling. Everything else (networks, thresholds, NMS, box regression)
runs facenet-pytorch's own code, so the boxes equal `MTCNN.detect`'s; tests check that.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from facenet_pytorch.models.mtcnn import ONet, PNet, RNet
from facenet_pytorch.models.utils.detect_face import (
    batched_nms,
    batched_nms_numpy,
    bbreg,
    fixed_batch_process,
    generateBoundingBox,
    imresample,
    pad,
    rerec,
)


class ExactMaxPool2d(torch.nn.Module):
    """`MaxPool2d(k, s, ceil_mode=True)` as strided maxima, rows then columns: same values,
    a few times faster than torch's CPU kernel on these shapes."""

    def __init__(self, kernel_size: int, stride: int) -> None:
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride

    def _out_len(self, length: int) -> int:
        k, s = self.kernel_size, self.stride
        out = math.ceil((length - k) / s) + 1
        if (out - 1) * s >= length:  # torch drops a last window that would start past the edge
            out -= 1
        return out

    def _max_along(self, x: torch.Tensor, dim: int) -> torch.Tensor:
        """Window i covers i*s .. i*s+k-1 along `dim`; at a ragged edge it is cut short, so
        offset d only reaches the first ceil((length-d)/s) windows."""
        k, s = self.kernel_size, self.stride
        length = x.shape[dim]
        out = self._out_len(length)

        def every(d: int, n: int) -> torch.Tensor:
            return x.narrow(dim, d, (n - 1) * s + 1)[(slice(None),) * (dim % x.dim()) + (slice(None, None, s),)]

        result, owned = every(0, out), False
        for d in range(1, k):
            n = min(out, math.ceil((length - d) / s))
            if n == out:
                result = torch.maximum(result, every(d, n))
                owned = True
            elif n > 0:
                if not owned:
                    result, owned = result.clone(), True
                part = result.narrow(dim, 0, n)
                torch.maximum(part, every(d, n), out=part)
        return result

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        channels_last = x.shape[1] > 1 and x.stride(1) == 1
        result = self._max_along(self._max_along(x, -1), -2)
        # torch's max_pool2d keeps the input's memory format; the next conv must see the same.
        return result.contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)


def load_nets(device: torch.device) -> tuple[PNet, RNet, ONet]:
    """P-, R- and O-Net with the weights shipped in facenet-pytorch's wheel, pools swapped."""
    pnet, rnet, onet = PNet(), RNet(), ONet()
    for net in (pnet, rnet, onet):
        for name, layer in list(net.named_children()):
            if isinstance(layer, torch.nn.MaxPool2d):
                assert layer.ceil_mode and layer.padding == 0, "unexpected MTCNN pooling layer"
                setattr(net, name, ExactMaxPool2d(layer.kernel_size, layer.stride))
        net.to(device).eval()
    return pnet, rnet, onet


class _Integral:
    """Summed-area tables of a batch: any area-resampled window of it, exactly, by four gathers."""

    def __init__(self, batch: np.ndarray, device: torch.device) -> None:
        b, h, w, c = batch.shape
        if device.type == "cpu":
            import cv2  # SIMD integral, several times faster than torch.cumsum on the CPU

            table = torch.from_numpy(np.stack([cv2.integral(img, sdepth=cv2.CV_32S) for img in batch]))
        else:
            pixels = torch.as_tensor(batch, device=device)  # copied to the GPU once per batch
            self.imgs = pixels.permute(0, 3, 1, 2).float()
            table = torch.nn.functional.pad(pixels.to(torch.int32).cumsum(1).cumsum(2), (0, 0, 1, 0, 1, 0))
        self.table = table
        self.flat = table.reshape(-1, c)  # (B*(H+1)*(W+1), C): one row per table cell
        self.height, self.width = h, w
        self.plane = (h + 1) * (w + 1)
        self.width1 = w + 1
        self.device = device

    def _gather(self, cells: torch.Tensor) -> torch.Tensor:
        """Table cells by flat index: (..., C)."""
        if self.device.type == "cpu":  # numpy's take is about twice as fast as index_select here
            out = torch.from_numpy(np.take(self.flat.numpy(), cells.numpy().ravel(), axis=0))
        else:
            out = self.flat.index_select(0, cells.reshape(-1))
        return out.reshape(*cells.shape, -1)

    def resample(
        self, images: torch.Tensor, top: torch.Tensor, left: torch.Tensor,
        height: torch.Tensor, width: torch.Tensor, out_h: int, out_w: int,
    ) -> torch.Tensor:
        """`interpolate(img[:, top:top+height, left:left+width], (out_h, out_w), mode="area")` for
        each (image, window) given as 1-D tensors: (K, C, out_h, out_w), channels-last memory."""
        r0, r1 = _bounds(top, height, out_h)
        c0, c1 = _bounds(left, width, out_w)
        # The four corners of every window in one gather: (2 row ends, 2 column ends, K, out_h, out_w).
        rows = torch.stack([r1, r0]) * self.width1 + (images * self.plane)[:, None]
        corners = self._gather(rows[:, None, :, :, None] + torch.stack([c1, c0])[None, :, :, None, :])
        sums = corners[0, 0].sub_(corners[0, 1]).sub_(corners[1, 0]).add_(corners[1, 1])  # exact: integers
        return _means(sums, r1 - r0, c1 - c0)

    def pyramid_level(self, out_h: int, out_w: int) -> torch.Tensor:
        """`interpolate(imgs, (out_h, out_w), mode="area")` of the whole batch."""
        if self.device.type != "cpu":  # torch's own kernel is fast on a GPU: use it as is
            return imresample(self.imgs, (out_h, out_w))
        # Rows then columns, each a `take` of whole table lines: the fastest exact way we found.
        table = self.table.numpy()
        zero = torch.zeros(1, dtype=torch.long)
        r0, r1 = (t[0] for t in _bounds(zero, torch.tensor([self.height]), out_h))
        c0, c1 = (t[0] for t in _bounds(zero, torch.tensor([self.width]), out_w))
        rows = np.take(table, r1.numpy(), axis=1)
        rows -= np.take(table, r0.numpy(), axis=1)
        sums = np.take(rows, c1.numpy(), axis=2)
        sums -= np.take(rows, c0.numpy(), axis=2)
        return _means(torch.from_numpy(sums), r1 - r0, c1 - c0)

    def candidates(self, image_inds: torch.Tensor, y, ey, x, ex, size: int) -> torch.Tensor:
        """facenet's per-candidate `imresample(imgs[i, :, y-1:ey, x-1:ex], (size, size))` loop."""
        keep = (ey > (y - 1)) & (ex > (x - 1))
        dev = self.device
        top = torch.as_tensor(y[keep] - 1, dtype=torch.long, device=dev)
        left = torch.as_tensor(x[keep] - 1, dtype=torch.long, device=dev)
        height = torch.as_tensor(ey[keep], dtype=torch.long, device=dev) - top
        width = torch.as_tensor(ex[keep], dtype=torch.long, device=dev) - left
        images = image_inds[torch.as_tensor(np.flatnonzero(keep), device=image_inds.device)].to(dev)
        # Channels-last, unlike facenet's contiguous batch: R/O-Net's convolutions run ~2x faster
        # on it, at the price of float rounding (~1e-6) in their scores and box offsets.
        return self.resample(images, top, left, height, width, size, size)


def _means(sums: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    """(..., out_h, out_w, C) window sums and (..., out_h) / (..., out_w) window sizes -> area
    means as (..., C, out_h, out_w) views of channels-last memory. Sums of uint8 pixels are
    exact integers; dividing by the window's height, then by its width, as torch's
    adaptive-average kernel does, gives its float32 result bit for bit."""
    means = sums.to(torch.float32)
    # Divisors spelled out to the shape of a window's means: dividing by broadcast (out_h, 1, 1)
    # and (1, out_w, 1) views is three times slower. In place: the same rounding, less memory.
    shape = (*rows.shape[:-1], *means.shape[-3:])
    means.div_(rows.to(torch.float32)[..., :, None, None].expand(shape).contiguous())
    means.div_(cols.to(torch.float32)[..., None, :, None].expand(shape).contiguous())
    return means.movedim(-1, -3)


def _bounds(start: torch.Tensor, length: torch.Tensor, out: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Adaptive-pooling windows: [start + floor(i*L/out), start + ceil((i+1)*L/out)) for i < out."""
    i = torch.arange(out, device=length.device)
    lo = (i * length[:, None]) // out
    hi = ((i + 1) * length[:, None] + out - 1) // out
    return start[:, None] + lo, start[:, None] + hi


def detect_faces(
    batch: np.ndarray,
    nets: tuple[PNet, RNet, ONet],
    *,
    min_face_size: int,
    thresholds: Sequence[float],
    factor: float,
    device: torch.device,
) -> list[np.ndarray]:
    """facenet-pytorch's `detect_face` for a (B, H, W, 3) uint8 batch: per photo (N, 5) float32
    arrays of x1, y1, x2, y2, probability, in facenet's order (not yet sorted by size)."""
    pnet, rnet, onet = nets
    batch = np.ascontiguousarray(batch)
    table = _Integral(batch, device)
    batch_size, h, w = (int(n) for n in batch.shape[:3])

    m = 12.0 / min_face_size
    minl = min(h, w) * m
    scale_i = m
    scales = []
    while minl >= 12:
        scales.append(scale_i)
        scale_i = scale_i * factor
        minl = minl * factor

    boxes, image_inds, scale_picks = [], [], []
    offset = 0
    for scale in scales:
        im_data = table.pyramid_level(int(h * scale + 1), int(w * scale + 1))
        im_data = im_data.sub_(127.5).mul_(0.0078125)  # facenet's (x - 127.5) * 0.0078125, in place
        reg, probs = pnet(im_data)
        boxes_scale, image_inds_scale = generateBoundingBox(reg, probs[:, 1], scale, thresholds[0])
        boxes.append(boxes_scale)
        image_inds.append(image_inds_scale)
        pick = batched_nms(boxes_scale[:, :4], boxes_scale[:, 4], image_inds_scale, 0.5)
        scale_picks.append(pick + offset)
        offset += boxes_scale.shape[0]

    boxes = torch.cat(boxes, dim=0)
    image_inds = torch.cat(image_inds, dim=0)
    scale_picks = torch.cat(scale_picks, dim=0)
    boxes, image_inds = boxes[scale_picks], image_inds[scale_picks]
    pick = batched_nms(boxes[:, :4], boxes[:, 4], image_inds, 0.7)
    boxes, image_inds = boxes[pick], image_inds[pick]

    regw = boxes[:, 2] - boxes[:, 0]
    regh = boxes[:, 3] - boxes[:, 1]
    qq1 = boxes[:, 0] + boxes[:, 5] * regw
    qq2 = boxes[:, 1] + boxes[:, 6] * regh
    qq3 = boxes[:, 2] + boxes[:, 7] * regw
    qq4 = boxes[:, 3] + boxes[:, 8] * regh
    boxes = torch.stack([qq1, qq2, qq3, qq4, boxes[:, 4]]).permute(1, 0)
    boxes = rerec(boxes)
    y, ey, x, ex = pad(boxes, w, h)

    if len(boxes) > 0:
        im_data = table.candidates(image_inds, y, ey, x, ex, 24).sub_(127.5).mul_(0.0078125)
        out = fixed_batch_process(im_data, rnet)
        out0 = out[0].permute(1, 0)
        out1 = out[1].permute(1, 0)
        score = out1[1, :]
        ipass = score > thresholds[1]
        boxes = torch.cat((boxes[ipass, :4], score[ipass].unsqueeze(1)), dim=1)
        image_inds = image_inds[ipass]
        mv = out0[:, ipass].permute(1, 0)
        pick = batched_nms(boxes[:, :4], boxes[:, 4], image_inds, 0.7)
        boxes, image_inds, mv = boxes[pick], image_inds[pick], mv[pick]
        boxes = bbreg(boxes, mv)
        boxes = rerec(boxes)

    if len(boxes) > 0:
        y, ey, x, ex = pad(boxes, w, h)
        im_data = table.candidates(image_inds, y, ey, x, ex, 48).sub_(127.5).mul_(0.0078125)
        out = fixed_batch_process(im_data, onet)
        out0 = out[0].permute(1, 0)
        out2 = out[2].permute(1, 0)
        score = out2[1, :]
        ipass = score > thresholds[2]
        boxes = torch.cat((boxes[ipass, :4], score[ipass].unsqueeze(1)), dim=1)
        image_inds = image_inds[ipass]
        mv = out0[:, ipass].permute(1, 0)
        boxes = bbreg(boxes, mv)
        pick = batched_nms_numpy(boxes[:, :4], boxes[:, 4], image_inds, 0.7, "Min")
        boxes, image_inds = boxes[pick], image_inds[pick]

    boxes_np = boxes.cpu().numpy()
    inds_np = image_inds.cpu().numpy()
    return [boxes_np[inds_np == i].copy() for i in range(batch_size)]
