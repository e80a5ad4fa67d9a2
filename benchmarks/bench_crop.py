"""Library vs. the notebook's loop, on the same generated portraits, in one run.

    .venv/bin/python benchmarks/bench_crop.py [--photos 96] [--device cpu|cuda] [--scale 500,2000]
    .venv/bin/python benchmarks/bench_crop.py --hard --photos 504 --stages 140 --whole-process 3

The reference is the notebook's loop exactly (notebook_loop.py: one photo at a time), with
its MTCNN built before the clock starts. The library runs `crop_photos`, the code path of the
CLI and the DAG, reading and writing the same files. Prints images/s of each, the ratio, peak
memory, and how many crop boxes differ; then the speed and changed boxes at min_face_size 40
and 80. `--hard` swaps the clean portraits for real faces 100-180 px wide in cluttered,
streaked rooms (where P-Net proposes several times more candidates); `--stages N` prints the
milliseconds of each MTCNN stage and the candidates per stage of both engines on N photos;
`--whole-process PAIRS` runs the loop script and `facecrop crop` as a user does, start-up
included, and each on one photo (its start-up). `--scale` runs the library alone on each
count in a fresh process and prints photos/s and peak RSS side by side. Runs end with a
`RESULT {json}` line for scripts.
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
sys.path.insert(0, str(Path(__file__).resolve().parent))

import mtcnn_stages  # noqa: E402
import notebook_loop  # noqa: E402

from facecrop_dev import cluttered, samples  # noqa: E402
from facecrop_ops.config.crop import Settings  # noqa: E402
from facecrop_ops.dataset.naming import CLASSES  # noqa: E402
from facecrop_ops.vision.processor import Photo, crop_photos, plan_workers  # noqa: E402


def make_photos(folder: Path, count: int, hard: bool = False) -> list[str]:
    """The generated portraits (a clean wall, one face of ~150 px), or with `hard` real faces
    100-180 px wide in cluttered, textured, streaked rooms (facecrop_dev.cluttered)."""
    names = []
    for i in range(count):
        if hard:
            rel, data = cluttered.photo(i)
        else:
            cls = CLASSES[i % len(CLASSES)]
            rel = f"train/images/{i // 7:06d}_female_Asian_30/{cls}.jpg"
            data = samples.encode(samples.portrait(i, mask=samples.class_mask(cls)).rgb)
        path = folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        names.append(rel)
    return names


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
    parser.add_argument("--hard", action="store_true", help="real faces 100-180 px in cluttered, streaked rooms")
    parser.add_argument("--stages", type=int, default=0, metavar="N",
                        help="time each MTCNN stage of both engines on the first N photos (one thread)")
    parser.add_argument("--whole-process", type=int, default=0, metavar="PAIRS",
                        help="also run the loop script and `facecrop crop` as processes, PAIRS interleaved pairs")
    parser.add_argument("--under-load", action="store_true",
                        help="also run both with one busy process per core beside them (a shared worker)")
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
        names = make_photos(src, args.photos, args.hard)
        settings = Settings(device=args.device, workers=args.workers)
        print(f"{len(names)} {'cluttered (--hard)' if args.hard else 'clean'} portraits 384x512, device {args.device}, torch {torch.__version__}, "
              f"{os.cpu_count()} CPUs, torch threads {torch.get_num_threads()}, "
              f"library workers {plan_workers(settings, len(names))}")

        ref_s, ref_boxes = notebook_loop.loop(src, tmp_path / "ref", names, args.device)
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
        if args.stages:
            stage_table(src, names[:args.stages])
        if args.whole_process:
            whole_process(src, tmp_path, args.whole_process)
        if args.under_load:
            under_load(src, tmp_path, names[:96], settings, ref_s / n, lib_s / n)


def stage_table(src: Path, names: list[str]) -> None:
    """Milliseconds a photo in each MTCNN stage and candidates per stage, both engines, one
    torch thread each (as each library worker runs)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    jpegs = [(src / rel).read_bytes() for rel in names]
    results = {engine: mtcnn_stages.profile(engine, jpegs) for engine in ("facenet", "fast")}
    torch.set_num_threads(threads)
    print(f"\nper stage, {len(names)} photos, one thread, in-process:")
    print(mtcnn_stages.table(results, len(names)))


def under_load(src: Path, tmp: Path, names: list[str], settings: Settings, loop_idle: float, lib_idle: float) -> None:
    """Both again while one busy process per core competes for the CPU, as on a shared worker:
    torch's intra-op threads wait for each other at every layer, one thread per process does not."""
    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(os.cpu_count() or 1)]
    try:
        loop_s, _ = notebook_loop.loop(src, tmp / "loaded-ref", names, settings.device)
        lib_s, _ = library_run(src, tmp / "loaded-lib", names, settings)
    finally:
        for p in busy:
            p.kill()
            p.wait()
    n = len(names)
    print(f"\nunder load ({len(busy)} busy processes, {n} photos), ms a photo: notebook loop {loop_idle * 1000:.0f} idle -> "
          f"{loop_s / n * 1000:.0f} loaded ({loop_s / n / loop_idle:.1f}x slower); library {lib_idle * 1000:.0f} -> "
          f"{lib_s / n * 1000:.0f} ({lib_s / n / lib_idle:.1f}x slower)")


def _run(cmd: list[str]) -> tuple[float, float]:
    """Wall and CPU seconds of a command, its children included."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def whole_process(src: Path, tmp: Path, pairs: int) -> None:
    """As users run them, start-up included: the notebook's loop as a script (torch's default
    threads) and `facecrop crop` (defaults), interleaved pairs so drift hits both; then each
    on one photo, which is its start-up cost."""
    facecrop = str(Path(sys.executable).with_name("facecrop"))
    commands = {"notebook loop": lambda s, d: [sys.executable, notebook_loop.__file__, str(s), str(d)],
                "facecrop crop": lambda s, d: [facecrop, "crop", str(s), str(d)]}
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in commands}
    for i in range(pairs):
        for name, cmd in commands.items():
            times[name].append(_run(cmd(src, tmp / f"whole-{i}-{name.replace(' ', '-')}")))
    one = tmp / "one"
    first = next(src.rglob("*.jpg"))
    (one / first.relative_to(src)).parent.mkdir(parents=True)
    (one / first.relative_to(src)).write_bytes(first.read_bytes())
    startup = {name: _run(cmd(one, tmp / f"one-{name.replace(' ', '-')}"))[0] for name, cmd in commands.items()}
    n = sum(1 for _ in src.rglob("*.jpg"))
    median = {name: sorted(t)[len(t) // 2] for name, t in times.items()}
    print(f"\nwhole process, {n} photos, median of {pairs} interleaved pairs:")
    print(f"{'':<15}{'wall s':>8}{'CPU s':>8}{'photos/s':>10}{'1 photo (start-up)':>21}")
    for name, (wall, cpu) in median.items():
        print(f"{name:<15}{wall:>8.1f}{cpu:>8.1f}{n / wall:>10.1f}{startup[name]:>19.1f} s")
    ratio = median["notebook loop"][0] / median["facecrop crop"][0]
    print(f"speed-up, whole process: {ratio:.2f}x wall, {median['notebook loop'][1] / median['facecrop crop'][1]:.2f}x CPU")
    print("RESULT " + json.dumps({"whole_process": {k: {"wall": w, "cpu": c} for k, (w, c) in median.items()},
                                  "startup": startup, "speedup": ratio}))


if __name__ == "__main__":
    main()
