"""Every knob of a crop run in one place, with the reference notebook's values as defaults.

The CLI's options and the DAG's params are both read into `Settings`, so a value means the
same thing wherever it is set, and a bad one is refused before any photo is touched, with a
message that says how to fix it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

INTERPOLATIONS = ("area", "linear", "cubic", "nearest", "lanczos")
ENGINES = ("fast", "facenet")
FALLBACKS = ("centre", "sibling")
FALLBACK_SIZES = ("fixed", "auto")


class SettingsError(ValueError):
    """A setting a user gave is unusable; the message names each bad one and its fix."""

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.problems = problems or [message]


@dataclass(frozen=True)
class Settings:
    # Padding around the detector's box, in source pixels. The extra 60 px on top keeps the
    # hair, which helps the classifier tell gender and age.
    margin_left: int = 30
    margin_right: int = 30
    margin_top: int = 60
    margin_bottom: int = 30
    # Centre crop used when no face is found: 1.2 x the mean padded crop of the original data.
    fallback_width: int = 256
    fallback_height: int = 340
    # Every crop is resized to this size, the classifier's input.
    output_width: int = 210
    output_height: int = 280
    interpolation: str = "area"
    # JPEG quality of faces saved as .jpg/.jpeg (OpenCV's own default, as the notebook used).
    jpeg_quality: int = 95
    # MTCNN: "auto" takes cuda when the worker has a GPU, else cpu.
    device: str = "auto"
    min_face_size: int = 20
    thresholds: tuple[float, float, float] = (0.6, 0.7, 0.7)
    factor: float = 0.709
    # True: the largest face is taken (the reference); False: the most probable one.
    select_largest: bool = True
    # Photos of one size detected together; 8-16 is fastest on CPUs.
    batch_size: int = 8
    # Worker processes on the CPU (one torch thread each); 0 = one per core, at most 8.
    # On a GPU one process feeds the device.
    workers: int = 0
    # "fast": our exact re-implementation of MTCNN.detect (same crop boxes, ~1.7x faster on
    # CPUs); "facenet": facenet-pytorch's own MTCNN.detect.
    engine: str = "fast"
    # Where MTCNN misses (masked faces, mostly). "centre": the reference's centre box.
    # "sibling": the face box of the same person's detected photos (one sitting, so the face
    # is nearly where it was), the centre box only when none was detected.
    fallback: str = "centre"
    # The centre box: "fixed" is fallback_width x fallback_height; "auto" is 1.2 x the mean
    # padded crop of the detections around it (the shard's; the CLI's whole run), which is how
    # the reference's 256 x 340 was derived, for photos that are not 384 x 512.
    fallback_size: str = "fixed"
    # Missed photos are detected again with relaxed thresholds; a box is taken only when it
    # agrees with the same person's detected faces (IoU >= second_pass_min_iou), so a "face"
    # on a shirt or the background is never cropped.
    second_pass: bool = False
    second_pass_thresholds: tuple[float, float, float] = (0.4, 0.5, 0.5)
    second_pass_min_iou: float = 0.5

    @property
    def margins(self) -> tuple[int, int, int, int]:
        return (self.margin_left, self.margin_right, self.margin_top, self.margin_bottom)

    def problems(self) -> list[str]:
        """Each unusable value, with what to set instead."""
        out = []

        def need(ok: bool, name: str, rule: str) -> None:
            if not ok:
                value = getattr(self, name)
                default = getattr(DEFAULTS, name)
                out.append(f"{name}={value!r} is invalid: it must be {rule} (default {default!r})")

        for name in ("margin_left", "margin_right", "margin_top", "margin_bottom"):
            need(_is_int(getattr(self, name)) and getattr(self, name) >= 0, name, "an integer >= 0")
        for name in ("fallback_width", "fallback_height", "output_width", "output_height"):
            need(_is_int(getattr(self, name)) and getattr(self, name) >= 1, name, "an integer >= 1")
        need(self.interpolation in INTERPOLATIONS, "interpolation", f"one of {', '.join(INTERPOLATIONS)}")
        need(_is_int(self.jpeg_quality) and 1 <= self.jpeg_quality <= 100, "jpeg_quality", "an integer 1..100")
        need(
            isinstance(self.device, str) and re.fullmatch(r"auto|cpu|cuda(:\d+)?", self.device) is not None,
            "device", "auto, cpu, cuda or cuda:N",
        )
        need(_is_int(self.min_face_size) and self.min_face_size >= 1, "min_face_size", "an integer >= 1")
        need(
            isinstance(self.thresholds, tuple) and len(self.thresholds) == 3
            and all(_is_num(t) and 0 < t < 1 for t in self.thresholds),
            "thresholds", "three numbers between 0 and 1 (P-, R-, O-Net)",
        )
        need(_is_num(self.factor) and 0.1 <= self.factor <= 0.95, "factor", "a number from 0.1 to 0.95")
        need(isinstance(self.select_largest, bool), "select_largest", "true or false")
        need(_is_int(self.batch_size) and 1 <= self.batch_size <= 256, "batch_size", "an integer 1..256")
        need(_is_int(self.workers) and 0 <= self.workers <= 64, "workers", "an integer 0..64 (0 = auto)")
        need(self.engine in ENGINES, "engine", f"one of {', '.join(ENGINES)}")
        need(self.fallback in FALLBACKS, "fallback", f"one of {', '.join(FALLBACKS)}")
        need(self.fallback_size in FALLBACK_SIZES, "fallback_size", f"one of {', '.join(FALLBACK_SIZES)}")
        need(isinstance(self.second_pass, bool), "second_pass", "true or false")
        need(
            isinstance(self.second_pass_thresholds, tuple) and len(self.second_pass_thresholds) == 3
            and all(_is_num(t) and 0 < t < 1 for t in self.second_pass_thresholds),
            "second_pass_thresholds", "three numbers between 0 and 1 (P-, R-, O-Net)",
        )
        need(_is_num(self.second_pass_min_iou) and 0 < self.second_pass_min_iou <= 1, "second_pass_min_iou",
             "a number above 0, at most 1")
        return out

    @property
    def uses_siblings(self) -> bool:
        """Whether a photo's crop may depend on the other photos of its person folder."""
        return self.fallback == "sibling" or self.second_pass

    def check(self, source: str = "setting") -> Settings:
        """Raise one SettingsError listing every problem, or return self. `source` names where
        the values came from ("option", "param") in the message."""
        problems = self.problems()
        if problems:
            raise SettingsError(f"bad {source}: " + "; ".join(problems), problems)
        return self

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any], *, source: str = "setting") -> Settings:
        """Build from a dict such as DAG params; unknown keys are refused, not ignored."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            problem = f"unknown {source}: {', '.join(unknown)}; known ones are {', '.join(sorted(known))}"
            raise SettingsError(problem, [problem])
        kwargs = dict(values)
        for name in ("thresholds", "second_pass_thresholds"):
            if isinstance(kwargs.get(name), list):
                kwargs[name] = tuple(kwargs[name])
        return cls(**kwargs).check(source)

    def as_dict(self) -> dict[str, Any]:
        """The knobs as plain JSON values (for manifests, reports and DAG params)."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out["thresholds"] = list(self.thresholds)
        out["second_pass_thresholds"] = list(self.second_pass_thresholds)
        return out

    def fingerprint(self) -> str:
        """A short hash of the knobs that shape the faces (not where or how fast they are
        computed: device and workers), to tell runs with different settings apart."""
        shaping = {k: v for k, v in self.as_dict().items() if k not in ("device", "workers")}
        return hashlib.sha256(json.dumps(shaping, sort_keys=True).encode()).hexdigest()[:12]


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_num(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


DEFAULTS = Settings()
