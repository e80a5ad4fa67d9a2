"""Library vs. the notebook's loop, on the same generated portraits, in one run.

    .venv/bin/python benchmarks/bench_crop.py [--photos 96] [--device cpu|cuda] [--scale 500,2000]

The reference is the notebook's loop exactly (one photo at a time: cv2.imread, BGR->RGB,
facenet's MTCNN(keep_all=True).detect, pad/clamp, crop, resize, cv2.imwrite), with its
MTCNN built before the clock starts. The library runs `crop_photos`, the code path of the
CLI and the DAG, reading and writing the same files, its process start-up included.
Prints images/s of each, the ratio, peak memory, and how many crop boxes differ; then the
speed and changed boxes at min_face_size 40 and 80. `--scale` runs the library alone on each
count in a fresh process and prints photos/s and peak RSS side by side, so a regression in how
cost grows shows at a glance. Each run ends with a `RESULT {json}` line for scripts.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "plugins"))

from facecrop_dev import samples  # noqa: E402
from facecrop_ops.config.crop import Settings  # noqa: E402
from facecrop_ops.dataset.naming import CLASSES  # noqa: E402
from facecrop_ops.vision.processor import Photo, crop_photos, plan_workers  # noqa: E402


def make_photos(folder: Path, count: int) -> list[str]:
    names = []
    for i in range(count):
        cls = CLASSES[i % len(CLASSES)]
        rel = f"train/images/{i // 7:06d}_female_Asian_30/{cls}.jpg"
        path = folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(samples.encode(samples.portrait(i, mask=samples.class_mask(cls)).rgb))
        names.append(rel)
    return names


def reference_loop(src: Path, dst: Path, names: list[str], device: str) -> tuple[float, dict[str, tuple]]:
    """The notebook's loop (with its hard-coded 384 x 512 clamp replaced by the photo's size,
    which is the same on these photos)."""
    import cv2
    import torch
    from facenet_pytorch import MTCNN

    mtcnn = MTCNN(keep_all=True, device=torch.device(device))
    boxes = {}
    start = time.perf_counter()
    for rel in names:
        img = cv2.imread(str(src / rel))
        img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
        found, _ = mtcnn.detect(img)
        h, w = img.shape[:2]
        if found is not None:
            x1, y1, x2, y2 = map(int, found[0])
            x1, y1, x2, y2 = max(0, x1 - 30), max(0, y1 - 60), min(w, x2 + 30), min(h, y2 + 30)
        else:
            x1, y1, x2, y2 = 64, 86, 320, 426
        face = cv2.resize(img[y1:y2, x1:x2], (210, 280), interpolation=cv2.INTER_AREA)
        out = dst / rel.replace("/images/", "/faces/")
        out.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(out), cv2.cvtColor(face, cv2.COLOR_RGB2BGR))
        boxes[rel] = (x1, y1, x2, y2)
    return time.perf_counter() - start, boxes


def library_run(src: Path, dst: Path, names: list[str], settings: Settings) -> tuple[float, dict[str, tuple]]:
    start = time.perf_counter()
    boxes = {}
    photos = [Photo(rel, rel.replace("/images/", "/faces/"), path=str(src / rel)) for rel in names]
    for result in crop_photos(photos, settings):
        out = dst / result.row.output
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(result.face)
        boxes[result.row.source] = result.row.crop
    return time.perf_counter() - start, boxes


def compare(ref: dict[str, tuple], got: dict[str, tuple]) -> tuple[int, int]:
    """(boxes that differ, largest coordinate difference in px)."""
    differ = [k for k in ref if tuple(ref[k]) != tuple(got[k])]
    worst = max((max(abs(a - b) for a, b in zip(ref[k], got[k])) for k in differ), default=0)
    return len(differ), worst


def peak_mb(who: int) -> float:
    return resource.getrusage(who).ru_maxrss / 1024


def vm_hwm_mb() -> float:
    """This process's own peak RSS (ru_maxrss would carry a parent's size across exec)."""
    return next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:")) / 1024


def library_only(count: int, device: str, workers: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "src"
        names = make_photos(src, count)
        secs, _ = library_run(src, Path(tmp) / "lib", names, Settings(device=device, workers=workers))
    return {"photos": count, "photos_per_s": count / secs, "task_mb": vm_hwm_mb(), "worker_mb": peak_mb(resource.RUSAGE_CHILDREN)}


def scale(counts: list[int], device: str, workers: int) -> None:
    rows = []
    for count in counts:
        out = subprocess.run([sys.executable, __file__, "--one", str(count), "--device", device, "--workers", str(workers)],
                             capture_output=True, text=True, check=True)
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    print(f"{'photos':>8}{'photos/s':>10}{'peak RSS, process':>19}{'largest worker':>16}   (device {device})")
    for r in rows:
        print(f"{r['photos']:>8}{r['photos_per_s']:>10.1f}{r['task_mb']:>16.0f} MB{r['worker_mb']:>13.0f} MB")
    print("RESULT " + json.dumps({"device": device, "scale": rows}))


def build_parser() -> argparse.ArgumentParser:
    """The command line, apart so tests/test_docs.py can check documented commands against it."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--photos", type=int, default=96)
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--workers", type=int, default=0, help="library processes (0 = auto)")
    parser.add_argument("--skip-min-face", action="store_true", help="skip the min_face_size 40/80 runs")
    parser.add_argument("--scale", help="photo counts for the library alone, e.g. 500,2000")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    return parser


def main() -> None:
    args = build_parser().parse_args()
    if args.one:
        print(json.dumps(library_only(args.one, args.device, args.workers)))
        return
    if args.scale:
        scale([int(n) for n in args.scale.split(",")], args.device, args.workers)
        return

    import torch

    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        src = tmp_path / "src"
        names = make_photos(src, args.photos)
        settings = Settings(device=args.device, workers=args.workers)
        print(f"{len(names)} portraits 384x512, device {args.device}, torch {torch.__version__}, "
              f"{os.cpu_count()} CPUs, torch threads {torch.get_num_threads()}, "
              f"library workers {plan_workers(settings, len(names))}")

        ref_s, ref_boxes = reference_loop(src, tmp_path / "ref", names, args.device)
        ref_rss = peak_mb(resource.RUSAGE_SELF)
        lib_s, lib_boxes = library_run(src, tmp_path / "lib", names, settings)
        differ, worst = compare(ref_boxes, lib_boxes)
        same_bytes = sum(
            (tmp_path / "ref" / r.replace("/images/", "/faces/")).read_bytes()
            == (tmp_path / "lib" / r.replace("/images/", "/faces/")).read_bytes()
            for r in names
        )
        n = len(names)
        print(f"reference loop : {n / ref_s:6.1f} images/s ({ref_s:.2f} s)")
        print(f"library        : {n / lib_s:6.1f} images/s ({lib_s:.2f} s)")
        print(f"speed-up       : {ref_s / lib_s:.2f}x")
        print(f"crop boxes     : {n - differ}/{n} identical ({(n - differ) / n:.1%}), "
              f"{differ} differ, largest difference {worst} px; {same_bytes}/{n} face files byte-identical")
        print(f"peak RSS       : reference process {ref_rss:.0f} MB; library parent "
              f"{peak_mb(resource.RUSAGE_SELF):.0f} MB, largest worker {peak_mb(resource.RUSAGE_CHILDREN):.0f} MB")
        print("RESULT " + json.dumps({"device": args.device, "photos": n, "reference_per_s": n / ref_s, "library_per_s": n / lib_s,
                                      "speedup": ref_s / lib_s, "boxes_identical": n - differ}))
        if not args.skip_min_face:
            for size in (40, 80):
                fast = Settings(device=args.device, workers=args.workers, min_face_size=size)
                secs, boxes = library_run(src, tmp_path / f"mfs{size}", names, fast)
                differ, worst = compare(ref_boxes, boxes)
                print(f"min_face_size {size}: {n / secs:6.1f} images/s ({ref_s / secs:.2f}x the reference), "
                      f"{differ}/{n} crop boxes changed (largest {worst} px)")


if __name__ == "__main__":
    main()
