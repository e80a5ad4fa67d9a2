"""The DAG's throughput against the CLI's on the same photos and machine, side by side.

Builds one sample dataset (default 558 people x 7 photos + 12 eval = 3,918 photos), writes it
to a local folder and to the local S3 API, then:

- the CLI (`facecrop crop SRC DST`, default settings) on the folder: its wall time, process
  start and torch import included;
- the DAG on a deployed Airflow (facecrop_dev.local_deploy: PostgreSQL, LocalExecutor,
  moto's S3 on 127.0.0.1, docker-compose.yaml's settings), one run triggered through the REST
  API with default params: the run's wall time from trigger to success, and each task's.

It prints photos/s of both, their ratio, where the DAG's time went (plan, each shard and the
gap before it, publish, metrics), and the CPU the S3 server used meanwhile: on this 2-core
machine the local S3 API is a Python program competing with detection, which a real S3 or
MinIO on other machines is not.

    .venv/bin/python benchmarks/bench_dag_vs_cli.py                 # --people 558
    .venv/bin/python benchmarks/bench_dag_vs_cli.py --conf '{"photos_per_shard": 500}'
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from facecrop_dev import samples
from facecrop_dev.local_deploy import DAG_ID, DATASET_BUCKET, DATASET_PREFIX, deployed_airflow

WEB = ("airflow-apiserver", "airflow-scheduler", "airflow-dag-processor")
LOCAL = {"AIRFLOW__CORE__EXECUTOR": "LocalExecutor", "AIRFLOW__CORE__PARALLELISM": "4"}


def _when(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def busy_seconds() -> float:
    """CPU seconds the whole machine has spent busy (all cores, every process), from /proc/stat:
    what a run costs in CPU wherever its processes are."""
    fields = [int(v) for v in open("/proc/stat").readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle, iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def run_cli(files: dict[str, bytes]) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "src", Path(tmp) / "dst"
        for key, data in files.items():
            (src / key).parent.mkdir(parents=True, exist_ok=True)
            (src / key).write_bytes(data)
        started, cpu = time.monotonic(), busy_seconds()
        subprocess.run([str(Path(sys.executable).parent / "facecrop"), "crop", str(src), str(dst), "--quiet"],
                       check=True, stdout=subprocess.DEVNULL)
        return time.monotonic() - started, busy_seconds() - cpu


def run_dag(files: dict[str, bytes], conf: dict) -> dict:
    with deployed_airflow(extra_env=LOCAL, services=WEB, dataset=iter(files.items())) as stack:
        api = stack.api()
        api.set_paused(DAG_ID, False)
        cpu_before = resource.getrusage(resource.RUSAGE_SELF)
        triggered, busy = datetime.now(timezone.utc), busy_seconds()
        run_id = api.trigger(DAG_ID, {"source_uri": f"s3://{DATASET_BUCKET}/{DATASET_PREFIX}", **conf})
        run = api.wait_for_run(DAG_ID, run_id, 3600, alive=stack.check_alive)
        busy = busy_seconds() - busy  # up to one poll (2 s) of idle machine after the end: a little low
        wall = (_when(run["end_date"]) - triggered).total_seconds()  # from the trigger to the run's recorded end
        cpu_after = resource.getrusage(resource.RUSAGE_SELF)
        if run["state"] != "success":
            raise SystemExit(f"the run ended {run['state']}")
        tis = sorted(api.task_instances(DAG_ID, run_id), key=lambda t: t["start_date"] or "")
        shard_log = api.get(f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/crop_shard/logs/1", map_index=0,
                            full_content=True).get("content", [])
    s3_cpu = (cpu_after.ru_utime - cpu_before.ru_utime) + (cpu_after.ru_stime - cpu_before.ru_stime)
    return {"wall": wall, "busy": busy, "tasks": tis, "run": run, "s3_cpu": s3_cpu, "shard_log": shard_log}


def build_parser() -> argparse.ArgumentParser:
    """The command line, apart so tests/test_docs.py can check documented commands against it."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--people", type=int, default=558, help="person folders (7 photos each), plus 12 eval photos")
    parser.add_argument("--conf", default="{}", help="DAG params as JSON, beside source_uri")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    print(f"building {args.people * 7 + 12} sample photos...", file=sys.stderr, flush=True)
    files = dict(samples.dataset(args.people, 12, junk=False))
    photos = sum("/images/" in k for k in files)
    print("CLI...", file=sys.stderr, flush=True)
    cli_s, cli_cpu = run_cli(files)
    print("DAG (starting the deployment)...", file=sys.stderr, flush=True)
    dag = run_dag(files, json.loads(args.conf))
    run_start = _when(dag["run"]["start_date"])
    print(f"\n{photos} photos, {os.cpu_count()} CPU cores, DAG params {args.conf}")
    print(f"{'':<24}{'seconds':>9}{'photos/s':>10}{'CPU s':>8}{'CPU ms/photo':>14}")
    print(f"{'CLI (facecrop crop)':<24}{cli_s:>9.1f}{photos / cli_s:>10.1f}{cli_cpu:>8.0f}{1000 * cli_cpu / photos:>14.1f}")
    print(f"{'DAG run (trigger->end)':<24}{dag['wall']:>9.1f}{photos / dag['wall']:>10.1f}{dag['busy']:>8.0f}"
          f"{1000 * dag['busy'] / photos:>14.1f}")
    print(f"DAG / CLI throughput: {cli_s / dag['wall']:.2f}x")
    print(f"of the DAG's CPU, the local S3 server (moto): {1000 * dag['s3_cpu'] / photos:.1f} ms/photo")
    print(f"\nwhere the DAG's time went (seconds from the run's start):\n{'task':<28}{'starts':>8}{'ends':>8}{'seconds':>9}")
    for ti in dag["tasks"]:
        if not ti["start_date"]:
            continue
        name = ti["task_id"] + (f"[{ti['map_index']}]" if ti["map_index"] >= 0 else "")
        start, end = (_when(ti[k]) - run_start for k in ("start_date", "end_date"))
        print(f"{name:<28}{start.total_seconds():>8.1f}{end.total_seconds():>8.1f}{(end - start).total_seconds():>9.1f}")
    shard0 = next(ti for ti in dag["tasks"] if ti["task_id"] == "crop_shard" and ti["map_index"] == 0)
    print("\ncrop_shard[0]'s log, seconds from the task's start:")
    for item in dag["shard_log"]:
        event = str(item.get("event", "")) if isinstance(item, dict) else ""
        if item.get("timestamp") and re.search(r"detect on|pull: |crop: |detection ran|shard \d+: ", event):
            at = (_when(item["timestamp"]) - _when(shard0["start_date"])).total_seconds()
            print(f"{at:>7.1f}  {event[:110]}")
    print(f"\nThe machine: {os.cpu_count()} cores, {os.cpu_count() * dag['wall']:.0f} core-seconds during the DAG run, "
          f"{dag['busy']:.0f} of them busy (CPU s above: every process, the S3 server and Airflow's own included)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
