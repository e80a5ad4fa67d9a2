"""Crop quality where MTCNN misses: the reference's centre box against `sibling`, `second_pass`
and `fallback_size auto`, on masked portraits whose true face boxes are known.

Each person is one sitting: seven photos with the same framing give or take a few pixels and
3 % of scale, five masks worn correctly (colours and textures vary), one below the nose or on
the chin, one bare face. For every option it prints misses per class (first pass, and those
left after the option), the mean IoU of the crop used against the ideal crop (the reference's
padding around the true face) over all photos and over the missed ones, the lowest IoU of a
face a second pass accepted against the true face, how many `normal` crops changed, and the
speed against the reference run in the same process.

    .venv/bin/python benchmarks/bench_quality.py           # --people 24
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import replace

from facecrop_dev import samples
from facecrop_ops.config.crop import Settings
from facecrop_ops.dataset.manifest import FALLBACK, MTCNN, SECOND_PASS
from facecrop_ops.dataset.naming import CLASSES
from facecrop_ops.vision.geometry import iou, padded_box
from facecrop_ops.vision.processor import Photo, crop_photos

OPTIONS = {
    "reference (centre)": Settings(),
    "fallback sibling": Settings(fallback="sibling"),
    "second_pass": Settings(second_pass=True),
    "second_pass + sibling": Settings(second_pass=True, fallback="sibling"),
    "fallback_size auto": Settings(fallback_size="auto"),
}


def sittings(n_people: int) -> tuple[list[Photo], dict[str, tuple[float, float, float, float]]]:
    """Photos and their true face boxes."""
    photos, truth = [], {}
    for person in range(n_people):
        for key, portrait in samples.sitting(person):
            photos.append(Photo(key, key.replace("/images/", "/faces/"), data=samples.encode(portrait.rgb)))
            truth[key] = portrait.face_box
    return photos, truth


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--people", type=int, default=24, help="sittings of seven photos")
    args = parser.parse_args(argv)
    photos, truth = sittings(args.people)
    size = (samples.WIDTH, samples.HEIGHT)
    results, seconds = {}, {}
    for name, settings in OPTIONS.items():
        settings = replace(settings, device="cpu")
        started = time.perf_counter()
        results[name] = {r.row.source: r.row for r in crop_photos(photos, settings)}
        seconds[name] = time.perf_counter() - started
        print(f"{name}: {seconds[name]:.1f} s", file=sys.stderr, flush=True)

    ideal = {k: padded_box(box, *size) for k, box in truth.items()}
    reference = results["reference (centre)"]
    missed = [k for k, row in reference.items() if row.status == FALLBACK]
    print(f"\n{len(photos)} photos of {args.people} people; {len(missed)} missed by MTCNN's first pass")
    print(f"\n{'option':<24}{'misses left':>12}{'masked left':>12}{'IoU all':>9}{'IoU missed':>11}"
          f"{'2nd-pass min IoU':>17}{'normal changed':>15}{'time':>8}")
    base = seconds["reference (centre)"]
    per_class = []
    for name, rows in results.items():
        left = [k for k in missed if rows[k].method not in (MTCNN, SECOND_PASS)]
        masked_left = [k for k in left if "/mask" in k or "incorrect_mask" in k]
        score = {k: iou(rows[k].crop, ideal[k]) for k in rows}
        accepted = [iou(rows[k].box, truth[k]) for k in rows if rows[k].method == SECOND_PASS]
        normal_changed = sum(rows[k].crop != reference[k].crop for k in rows if k.endswith("/normal.jpg"))
        print(f"{name:<24}{len(left):>12}{len(masked_left):>12}{statistics.mean(score.values()):>9.3f}"
              f"{statistics.mean(score[k] for k in missed) if missed else float('nan'):>11.3f}"
              f"{(f'{min(accepted):.3f} ({len(accepted)})' if accepted else '-'):>17}{normal_changed:>15}"
              f"{seconds[name] / base:>7.2f}x")
        per_class.append(f"{name:<24}" + "".join(f"{sum(k.endswith(f'/{c}.jpg') for k in left):>{len(c) + 2}}" for c in CLASSES))
    print(f"\nmisses left per class\n{'option':<24}" + "".join(f"{c:>{len(c) + 2}}" for c in CLASSES))
    print("\n".join(per_class))
    return 0


if __name__ == "__main__":
    sys.exit(main())
