"""Peak memory of one detect task (tasks.crop_shard) as its shard and its photos grow.

Each case runs in a fresh process against moto's S3 server on 127.0.0.1: plan one shard of
N or 4N photos, 384 x 512 or 3000 x 4000 (the same portraits scaled up), then crop it with
the task's code, streaming, and with every photo downloaded first (how the task worked
before: the baseline). It prints the peak RSS of the task's process and of its largest
detection worker (its RSS counts pages shared with the task), side by side. Large photos use min_face_size 160 (their faces are ~1000 px
wide; the default 20 would spend minutes on a pyramid no portrait needs).

    .venv/bin/python benchmarks/bench_memory.py           # --n 25
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys

import cv2
import numpy as np

from facecrop_dev import samples
from facecrop_dev.local_s3 import moto_server
from facecrop_ops import tasks
from facecrop_ops.config.run import parse
from facecrop_ops.run_store import RunStore
from facecrop_ops.s3io import S3Store
from facecrop_ops.vision.processor import Photo, crop_photos, plan_workers

BUCKET = "bench-memory"
SIZES = {"384x512": (384, 512), "3000x4000": (3000, 4000)}


def dataset(n: int, size: tuple[int, int]) -> list[tuple[str, bytes]]:
    photos = [(k, v) for k, v in samples.dataset(n_people=-(-n // 7), n_eval=0, junk=False) if "/images/" in k][:n]
    if size == (384, 512):
        return photos
    out = []
    noise = np.random.default_rng(0)
    for key, data in photos:
        rgb = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        big = cv2.resize(rgb, size, interpolation=cv2.INTER_CUBIC)
        # Sensor noise, so the JPEGs weigh what phone photos do (~4 MB), not a smooth upscale's.
        big = np.clip(big + noise.normal(0, 6, big.shape), 0, 255).astype(np.uint8)
        out.append((key.rsplit(".", 1)[0] + ".jpg", cv2.imencode(".jpg", big, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes()))
    return out


def _buffered(params: dict, run_id: str, shard: dict, store: S3Store) -> None:
    """The task before streaming: download the whole shard, then crop, then upload."""
    rp = parse(params)
    files = RunStore(store, rp.dest)
    keys = files.shard_list(files.run(run_id), shard["plan"], shard["shard"]).photos
    photos = [Photo(k, k.replace("/images/", "/faces/"), data=data)
              for k, data in ((rp.source.rel(key), d) for key, d in store.get_many(rp.source.bucket, [rp.source.key(k) for k in keys]))]
    faces = [(rp.dest.key(r.row.output), r.face, "image/jpeg")
             for r in crop_photos(photos, rp.settings, workers=plan_workers(rp.settings, len(photos))) if r.face]
    store.put_many(rp.dest.bucket, faces)


def one_case(endpoint: str, access: str, secret: str, prefix: str, n: int, mode: str, min_face: int) -> dict:
    """Runs in its own process: the task's peak memory, nothing else measured before it."""
    import boto3

    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id=access, aws_secret_access_key=secret)
    store = S3Store(client, threads=16)
    params = {"source_uri": f"s3://{BUCKET}/{prefix}", "dest_uri": f"s3://{BUCKET}/out-{mode}-{prefix}",
              "photos_per_shard": 100_000, "min_face_size": min_face}
    (shard,) = tasks.plan(params, "bench", store)
    if mode == "streaming":
        tasks.crop_shard(params, "bench", shard, store)
    else:
        _buffered(params, "bench", shard, store)
    # VmHWM: this process's own peak (ru_maxrss would carry the parent's size across exec).
    hwm_kb = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:"))
    return {"task_mb": hwm_kb / 1024, "worker_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
            "photos": shard["photos"]}


def build_parser() -> argparse.ArgumentParser:
    """The command line, apart so tests/test_docs.py can check documented commands against it."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=25, help="photos in the small shard (the large one has 4x)")
    parser.add_argument("--case", help=argparse.SUPPRESS)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.case:
        print(json.dumps(one_case(*json.loads(args.case))))
        return 0
    rows = []
    with moto_server() as s3:
        client = s3.client()
        client.create_bucket(Bucket=BUCKET)
        for label, size in SIZES.items():
            for key, data in dataset(4 * args.n, size):
                client.put_object(Bucket=BUCKET, Key=f"{label}-{4 * args.n}/{key}", Body=data)
            for key, data in dataset(args.n, size):
                client.put_object(Bucket=BUCKET, Key=f"{label}-{args.n}/{key}", Body=data)
        for label in SIZES:
            min_face = 20 if label == "384x512" else 160
            for n in (args.n, 4 * args.n):
                for mode in ("streaming", "buffered"):
                    case = json.dumps([s3.endpoint_url, s3.access_key, s3.secret_key, f"{label}-{n}", n, mode, min_face])
                    print(f"{label} x {n}, {mode}...", file=sys.stderr, flush=True)
                    out = subprocess.run([sys.executable, __file__, "--case", case], capture_output=True, text=True)
                    if out.returncode:
                        raise SystemExit(out.stderr[-3000:])
                    rows.append({"size": label, "n": n, "mode": mode, **json.loads(out.stdout.strip().splitlines()[-1])})
    print(f"\n{'photos':<12}{'shard':>7}{'task MB (streaming)':>21}{'task MB (buffered)':>20}{'worker MB (streaming)':>23}{'worker MB (buffered)':>22}")
    for label in SIZES:
        for n in (args.n, 4 * args.n):
            s, b = (next(r for r in rows if r["size"] == label and r["n"] == n and r["mode"] == m) for m in ("streaming", "buffered"))
            print(f"{label:<12}{n:>7}{s['task_mb']:>21.0f}{b['task_mb']:>20.0f}{s['worker_mb']:>23.0f}{b['worker_mb']:>22.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
