"""What a scheduled rerun costs: a full run, then a rerun over the unchanged bucket, then one
after 5 % of the photos were replaced, 2 % added and 1 % deleted, timed in this process with
the DAG's task bodies (plan, crop_shard, publish, record_metrics) against moto's S3 server on
127.0.0.1. Prints each run's time, its fraction of the full run, and photos downloaded.

    .venv/bin/python benchmarks/bench_incremental.py            # --people 60
"""

from __future__ import annotations

import argparse
import sys
import time

from facecrop_dev import samples
from facecrop_dev.local_s3 import moto_server
from facecrop_ops import tasks
from facecrop_ops.s3io import S3Store

BUCKET = "bench-incremental"


class Counting:
    def __init__(self, client):
        self.client, self.downloads = client, 0

    def __getattr__(self, name):
        real = getattr(self.client, name)
        if name != "get_object":
            return real

        def counted(**kwargs):
            self.downloads += "/images/" in kwargs["Key"]
            return real(**kwargs)
        return counted


def run(store: S3Store, params: dict, run_id: str) -> float:
    started = time.perf_counter()
    for ref in tasks.plan(params, run_id, store):
        tasks.crop_shard(params, run_id, ref, store)
    tasks.publish(params, run_id, store)
    tasks.record_metrics(params, run_id, store)
    return time.perf_counter() - started


def build_parser() -> argparse.ArgumentParser:
    """The command line, apart so tests/test_docs.py can check documented commands against it."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--people", type=int, default=60, help="person folders (7 photos each), plus 12 eval photos")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    params = {"source_uri": f"s3://{BUCKET}/raw/", "dest_uri": f"s3://{BUCKET}/out/"}
    with moto_server() as s3:
        s3.upload(BUCKET, "raw/", samples.dataset(args.people, 12, junk=False))
        client = Counting(s3.client())
        store = S3Store(client, threads=16)
        rows = []
        for name in ("full run", "unchanged rerun", "5 % replaced, 2 % added, 1 % deleted"):
            if name.startswith("5 %"):
                photos = sorted(k for k in store.list(tasks.parse_s3_uri(params["source_uri"])) if "/images/" in k)
                n = len(photos)
                for target, donor in zip(photos[: n * 5 // 100], photos[n // 2 :]):
                    s3.client().copy_object(Bucket=BUCKET, Key=target, CopySource=f"{BUCKET}/{donor}")
                for key in photos[-max(1, n // 100):]:
                    s3.client().delete_object(Bucket=BUCKET, Key=key)
                extra = [(k, v) for k, v in samples.dataset(args.people + 3, 0, junk=False) if f"{args.people + 1:06d}_" in k
                         or f"{args.people + 2:06d}_" in k]
                s3.upload(BUCKET, "raw/", extra[: max(1, n * 2 // 100)])
            client.downloads = 0
            seconds = run(store, params, name.replace(" ", "-").replace("%", "pc").replace(",", ""))
            rows.append((name, seconds, client.downloads))
            print(f"{name}: {seconds:.1f} s", file=sys.stderr, flush=True)
    full = rows[0][1]
    print(f"\n{'run':<40}{'seconds':>9}{'of the full run':>17}{'photos downloaded':>19}")
    for name, seconds, downloads in rows:
        print(f"{name:<40}{seconds:>9.1f}{seconds / full:>16.1%}{downloads:>19}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
