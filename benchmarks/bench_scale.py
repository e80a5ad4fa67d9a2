"""The control plane at 10,000 to 1,000,000 photos: the real task bodies against moto's S3 API,
each step's time, CPU and peak memory, their growth exponents and what they give at 10 million.

Photos are tiny objects in the real layout (60 % in person folders of seven, 40 % flat in
eval/images/, as the competition set is), with train_data.csv and test_data.csv naming them.
A shard's detection is replaced by what crop_shard leaves: its faces and its manifest (rows of
detected and missed photos, written as crop_shard writes them); nothing else is stubbed. Each
step runs in a fresh process (`--step`), so its peak RSS is its own: plan, publish and
record_metrics of a first run, the Face review page's first screen, then plan and publish of a
rerun over the unchanged bucket (every face reused).

moto's server runs in this process; setup objects go straight into its store (its HTTP PUT
takes ~20 ms). Its listing re-sorts the whole bucket for every page of 1,000 keys, which at a
million keys costs seconds a page and is no part of the project: it is given a sorted index
here (`_sorted_listing`). The S3 server's CPU is counted apart from the task's: the task's own
process is timed (user + system), and this process's CPU over the step is the server's.

    .venv/bin/python benchmarks/bench_scale.py                     # 10,000 and 100,000 photos
    .venv/bin/python benchmarks/bench_scale.py --sizes 10000,100000,1000000
"""

from __future__ import annotations

import argparse
import bisect
import hashlib
import json
import math
import os
import resource
import subprocess
import sys
import time
from datetime import datetime, timezone

from facecrop_dev.local_s3 import moto_server
from facecrop_ops.dataset.naming import CLASSES

STEPS = ("plan", "publish", "record_metrics", "review page", "plan, rerun", "publish, rerun")
BUCKET = "scale"
PHOTO = b"\xff\xd8\xff\xe0photo"
FACE = b"\xff\xd8\xff\xe0face"


def build_parser() -> argparse.ArgumentParser:
    """The command line, apart so tests/test_docs.py can check documented commands against it."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="10000,100000", help="photo counts, comma-separated")
    parser.add_argument("--until", choices=STEPS, default=STEPS[-1], help="the last step to run (those before it run too)")
    parser.add_argument("--step", help=argparse.SUPPRESS)  # a child process: run one step
    return parser


def _sorted_listing() -> None:
    """moto's ListObjectsV2 without a delimiter, over a sorted index of each bucket's keys kept
    until the bucket's key count changes (the benchmark only adds and deletes keys)."""
    from moto.s3.models import FakeDeleteMarker, S3Backend

    original = S3Backend.list_objects_v2
    index: dict[str, tuple[int, list[str]]] = {}

    def listing(self, bucket, prefix, delimiter, continuation_token, start_after, max_keys):  # noqa: ANN001, ANN202
        if delimiter:
            return original(self, bucket, prefix, delimiter, continuation_token, start_after, max_keys)
        count, names = index.get(bucket.name, (-1, []))
        if count != len(bucket.keys):
            names = sorted(bucket.keys.keys())
            index[bucket.name] = (len(bucket.keys), names)
        prefix = prefix or ""
        after = self._pagination_tokens.get(continuation_token) if continuation_token else start_after
        start = bisect.bisect_left(names, prefix) if not after else max(bisect.bisect_right(names, after),
                                                                          bisect.bisect_left(names, prefix))
        found = []
        for name in names[start:]:
            if not name.startswith(prefix) or len(found) > max_keys:
                break
            key = bucket.keys[name]
            if not isinstance(key, FakeDeleteMarker):
                found.append(key)
        return self._truncate_result(found, max_keys)

    S3Backend.list_objects_v2 = listing


def _backend():  # noqa: ANN202
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.s3.models import s3_backends

    return s3_backends[DEFAULT_ACCOUNT_ID]["aws"]


def _put(bucket: str, key: str, data: bytes) -> str:
    etag = hashlib.md5(data).hexdigest()
    _backend().put_object(bucket, key, data, etag=etag)
    return etag


def dataset(n: int) -> None:
    """n photos: 60 % in person folders of the seven classes, 40 % flat eval photos; the CSVs."""
    train = (n * 6 // 10) // 7 * 7
    train_rows, test_rows = ["path,gender,age"], ["path"]
    for i in range(train // 7):
        for cls in CLASSES:
            key = f"train/images/{i:07d}_female_Asian_{20 + i % 40}/{cls}.jpg"
            _put(BUCKET, "raw/" + key, PHOTO + key.encode())
            train_rows.append(f"{key},female,{20 + i % 40}")
    for i in range(n - train):
        key = f"eval/images/{hashlib.sha1(str(i).encode()).hexdigest()}.jpg"
        _put(BUCKET, "raw/" + key, PHOTO + key.encode())
        test_rows.append(key)
    _put(BUCKET, "raw/train_data.csv", ("\n".join(train_rows) + "\n").encode())
    _put(BUCKET, "raw/test_data.csv", ("\n".join(test_rows) + "\n").encode())


def crop_shards(run_id: str, refs: list[dict]) -> None:
    """What each shard's crop_shard leaves: its faces, then its manifest (the done mark); one
    photo in nine missed, the rest detected."""
    from facecrop_ops.dataset import manifest
    from facecrop_ops.dataset.codes import Method, Status
    from facecrop_ops.dataset.locations import S3Location
    from facecrop_ops.dataset.manifest import ManifestRow
    from facecrop_ops.dataset.naming import face_path, photo_class
    from facecrop_ops.dataset.run_folder import DestFolder, ShardList

    dest = S3Location(BUCKET, "out/")
    folder = DestFolder(dest).run(run_id)
    for ref in refs:
        files = folder.shards(ref["plan"])
        shard = ShardList.from_json(_backend().get_object(BUCKET, files.photos(ref["shard"])).value)
        rows = []
        for i, (source, etag) in enumerate(zip(shard.photos, shard.etags)):
            face = face_path(source)
            face_etag = _put(BUCKET, dest.key(face), FACE + face.encode())
            missed = i % 9 == 0
            rows.append(ManifestRow(source, face, photo_class(source), Status.FALLBACK if missed else Status.DETECTED,
                                    None if missed else 0.9 + (i % 100) / 1000,
                                    None if missed else (100.5, 120.25, 220.0, 300.0),
                                    (64, 86, 320, 426) if missed else (70, 60, 250, 330), faces=0 if missed else 1,
                                    method=Method.CENTRE if missed else Method.MTCNN, etag=etag, face_etag=face_etag))
        _put(BUCKET, files.done(ref["shard"]), manifest.dumps(rows).encode())


def run_step(step: str, endpoint: str, access: str, secret: str, run_id: str) -> None:
    """In a child process: one task body, against the parent's server; prints its time, its
    CPU and its peak RSS."""
    import boto3

    from facecrop_ops import tasks
    from facecrop_ops.s3io import S3Store, fast_listing

    client = fast_listing(boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                                       aws_access_key_id=access, aws_secret_access_key=secret))
    store = S3Store(client, threads=16)
    params = {"source_uri": f"s3://{BUCKET}/raw", "dest_uri": f"s3://{BUCKET}/out"}
    started = time.perf_counter()
    if step.startswith("plan"):
        out = tasks.plan(params, run_id, store)
    elif step.startswith("publish"):
        out = tasks.publish(params, run_id, store)["photos"]
    elif step == "record_metrics":
        out = tasks.record_metrics(params, run_id, store, run_after=datetime(2026, 12, 1, tzinfo=timezone.utc))["run"]
    else:
        from facecrop_ops.review import service

        out = len(service.items(service.Run(run_id, "success", "", service.run_params(params)), store)["items"])
    seconds = time.perf_counter() - started
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print("RESULT " + json.dumps({"seconds": seconds, "cpu": usage.ru_utime + usage.ru_stime,
                                  "rss_mb": _peak_rss_mb(), "out": out}))


def _peak_rss_mb() -> float:
    """This process's own high-water mark (VmHWM); getrusage's ru_maxrss would carry the parent's
    across fork and exec, and the parent holds the S3 server's million objects."""
    with open("/proc/self/status") as status:
        line = next(line for line in status if line.startswith("VmHWM:"))
    return int(line.split()[1]) / 1024


def measure(n: int, steps: tuple[str, ...] = STEPS) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    with moto_server() as s3:
        s3.client().create_bucket(Bucket=BUCKET)
        t0 = time.perf_counter()
        dataset(n)
        print(f"{n:,} photos put in {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
        env = {**os.environ, **s3.airflow_connection_env()}
        for step in steps:
            run_id = "second" if "rerun" in step else "first"
            server0 = _own_cpu()
            child = subprocess.run([sys.executable, __file__, "--step",
                                    json.dumps([step, s3.endpoint_url, s3.access_key, s3.secret_key, run_id])],
                                   env=env, capture_output=True, text=True)
            if child.returncode:
                raise SystemExit(f"{step} failed:\n{child.stderr[-3000:]}")
            result = json.loads(next(line for line in child.stdout.splitlines() if line.startswith("RESULT "))[7:])
            out[step] = {"seconds": result["seconds"], "cpu": result["cpu"], "rss_mb": result["rss_mb"],
                         "server_cpu": _own_cpu() - server0}
            print(f"  {step}: {result['seconds']:.1f} s, {result['rss_mb']:.0f} MB", file=sys.stderr, flush=True)
            if step.startswith("plan"):
                crop_shards(run_id, result["out"])
    return out


def _own_cpu() -> float:
    t = os.times()
    return t.user + t.system


def _exponent(sizes: list[int], values: list[float]) -> float:
    """Growth over the last step of sizes (the largest decade is what extrapolates to 10M)."""
    if len(sizes) < 2 or values[-2] <= 0:
        return math.nan
    return math.log(values[-1] / values[-2]) / math.log(sizes[-1] / sizes[-2])


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.step:
        run_step(*json.loads(args.step))
        return 0
    _sorted_listing()
    sizes = [int(s) for s in args.sizes.split(",")]
    steps = STEPS[:STEPS.index(args.until) + 1]
    results = {n: measure(n, steps) for n in sizes}
    print(f"\n{'step':<16}" + "".join(f"{f'{n:,} photos':>22}" for n in sizes) + f"{'time exp.':>11}{'RSS exp.':>10}"
          f"{'10M (extrapolated)':>22}")
    for step in steps:
        cells = "".join(f"{results[n][step]['seconds']:>9.1f} s {results[n][step]['rss_mb']:>7.0f} MB" for n in sizes)
        time_exp = _exponent(sizes, [results[n][step]["cpu"] for n in sizes])
        rss_exp = _exponent(sizes, [results[n][step]["rss_mb"] for n in sizes])
        last = results[sizes[-1]][step]
        factor = 10_000_000 / sizes[-1]
        ten_m = f"{last['seconds'] * factor ** time_exp / 60:>9.1f} min {last['rss_mb'] * factor ** rss_exp:>6.0f} MB"
        print(f"{step:<16}{cells}{time_exp:>11.2f}{rss_exp:>10.2f}{ten_m:>22}")
    print("\nCPU seconds of the task (its own process) and of the S3 server (moto, here) per step:")
    for step in steps:
        print(f"{step:<16}" + "".join(f"{results[n][step]['cpu']:>10.1f} / {results[n][step]['server_cpu']:>7.1f}"
                                      for n in sizes))
    print("time: wall seconds of the task body; exponents: growth of the task's CPU seconds and peak RSS from the "
          "next-to-largest to the largest size; 10M: the largest size's figures grown by those exponents")
    return 0


if __name__ == "__main__":
    sys.exit(main())
