"""Per-class detection-miss metrics, the numbers people watch: MTCNN misses masked faces far
more often than bare ones, and every miss is a worse (fallback) crop in the training data."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from facecrop_ops.dataset.codes import RESCUES, Method, Status
from facecrop_ops.dataset.manifest import ManifestRow
from facecrop_ops.dataset.naming import CLASSES, UNLABELED

ALL = "all"


@dataclass(frozen=True)
class ClassMetrics:
    images: int
    detected: int
    fallback: int
    errors: int
    rescued: int = 0  # misses whose crop came from template matching, the second detector, a second pass or a sibling
    reused: int = 0  # taken from the last run (same photo, same settings); the rest were cropped now
    corrected: int = 0  # a reviewer's box or "no usable face" applied (method manual)
    excluded: int = 0  # left out by a reviewer ("no usable face"): images = detected + fallback + errors + excluded
    # `rescued` by method: found by template matching or by a second pass, or a sibling's box
    rescued_template: int = 0
    rescued_second_pass: int = 0
    rescued_sibling: int = 0
    rescued_yunet: int = 0  # found by the second detector

    @property
    def miss_rate(self) -> float | None:
        """Share of readable photos where no face was found: fallback / (detected + fallback).
        Unreadable photos are errors, not misses. None when nothing was readable."""
        seen = self.detected + self.fallback
        return None if seen == 0 else self.fallback / seen

    def as_dict(self) -> dict[str, float | int | None]:
        out: dict[str, float | int | None] = dict(asdict(self))
        out["miss_rate"] = None if self.miss_rate is None else round(self.miss_rate, 6)
        return out


_COUNTS = 12


def per_class(rows: Iterable[ManifestRow]) -> dict[str, ClassMetrics]:
    """Metrics for each class present, in the dataset's class order, then `all`."""
    counts: dict[str, list[int]] = {}
    for row in rows:
        c = counts.setdefault(row.photo_class, [0] * _COUNTS)
        c[0] += 1
        c[1] += row.status == Status.DETECTED
        c[2] += row.status == Status.FALLBACK
        c[3] += row.status == Status.ERROR
        c[4] += row.status == Status.FALLBACK and row.method in RESCUES
        c[5] += row.reused
        c[6] += row.method == Method.MANUAL
        c[7] += row.status == Status.EXCLUDED
        c[8] += row.status == Status.FALLBACK and row.method == Method.TEMPLATE
        c[9] += row.status == Status.FALLBACK and row.method == Method.SECOND_PASS
        c[10] += row.status == Status.FALLBACK and row.method == Method.SIBLING
        c[11] += row.status == Status.FALLBACK and row.method == Method.YUNET
    order = [c for c in (*CLASSES, UNLABELED) if c in counts] + sorted(set(counts) - {*CLASSES, UNLABELED})
    out = {name: ClassMetrics(*counts[name]) for name in order}
    out[ALL] = ClassMetrics(*(sum(c[i] for c in counts.values()) for i in range(_COUNTS)))
    return out


def as_json(metrics: dict[str, ClassMetrics]) -> dict[str, dict[str, float | int | None]]:
    return {name: m.as_dict() for name, m in metrics.items()}


# The gauges' fields (their names are what dashboards query: new counts go to metrics.json only).
FIELDS = ("images", "detected", "fallback", "errors", "rescued", "reused", "corrected", "miss_rate")


def gauges(classes: dict[str, dict[str, float | int | None]]) -> dict[str, float | int]:
    """Airflow metrics for `as_json`'s output: facecrop.<field>.<class> (Airflow adds its
    prefix, e.g. airflow.facecrop.miss_rate.mask1). Counts are photos of the run; miss_rate
    is a ratio 0..1, left out for a class with no readable photo."""
    return {f"facecrop.{field}.{name}": m[field] for name, m in classes.items()
            for field in FIELDS if m.get(field) is not None}


def over_limits(classes: Mapping[str, Mapping[str, Any]], limits: Mapping[str, float]) -> list[str]:
    """One line per class over its miss-rate limit (or named by a limit and absent)."""
    over = []
    for name, limit in limits.items():
        if name not in classes:
            over.append(f"{name}: no such class in this run (classes: {', '.join(classes)})")
        elif classes[name]["miss_rate"] is not None and classes[name]["miss_rate"] > limit:
            over.append(f"{name}: miss rate {classes[name]['miss_rate']:.1%} > limit {limit:.1%}")
    return over


def table(metrics: dict[str, ClassMetrics]) -> str:
    """A fixed-width table for terminals and task logs."""
    header = (f"{'class':<16}{'images':>8}{'detected':>10}{'fallback':>10}{'rescued':>9}{'errors':>8}{'miss rate':>11}"
              f"{'reused':>8}{'corrected':>11}")
    lines = [header, "-" * len(header)]
    for name, m in metrics.items():
        if name == ALL:
            lines.append("-" * len(header))
        rate = "-" if m.miss_rate is None else f"{m.miss_rate:.1%}"
        lines.append(f"{name:<16}{m.images:>8}{m.detected:>10}{m.fallback:>10}{m.rescued:>9}{m.errors:>8}{rate:>11}"
                     f"{m.reused:>8}{m.corrected:>11}")
    total = metrics.get(ALL)
    if total is not None and total.rescued:
        lines.append(f"rescued by method: template {total.rescued_template}, yunet {total.rescued_yunet}, "
                     f"second_pass {total.rescued_second_pass}, sibling {total.rescued_sibling}")
    return "\n".join(lines)
