"""Detection throughput of the DAG's crop_shard task under each executor, on the same data.

Starts the local deployment (facecrop_dev.local_deploy: PostgreSQL, Redis, moto's S3 and
docker-compose.yaml's Airflow services) once per executor, triggers one run through the REST
API with every photo in one shard, and prints, side by side: the crop_shard task's duration
and photos/s, the crop rate its log reports, and how many processes detection ran in.
"Celery, one process" is how Celery ran before detection used worker processes there.

    .venv/bin/python benchmarks/bench_executors.py            # --people 60 (7 photos each)
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from datetime import datetime

from facecrop_dev import samples
from facecrop_dev.local_deploy import DAG_ID, DATASET_BUCKET, DATASET_PREFIX, deployed_airflow

WEB = ("airflow-apiserver", "airflow-scheduler", "airflow-dag-processor")
SETUPS = {
    "LocalExecutor": dict(services=WEB, extra_env={"AIRFLOW__CORE__EXECUTOR": "LocalExecutor", "AIRFLOW__CORE__PARALLELISM": "4"}),
    "CeleryExecutor": dict(services=(*WEB, "airflow-worker", "airflow-worker-gpu"), extra_env={}),
    "Celery, one process": dict(services=(*WEB, "airflow-worker", "airflow-worker-gpu"), extra_env={"FACECROP_CPU_WORKERS": "1"}),
}


def _seconds(ti: dict) -> float:
    parse = lambda s: datetime.fromisoformat(s.replace("Z", "+00:00"))  # noqa: E731
    return (parse(ti["end_date"]) - parse(ti["start_date"])).total_seconds()


def measure(name: str, people: int) -> dict:
    setup = SETUPS[name]
    with deployed_airflow(settings={"FACECROP_GPU_QUEUE": "gpu"}, extra_env=setup["extra_env"], services=setup["services"],
                          dataset=samples.dataset(people, 12, junk=False)) as stack:
        api = stack.api()
        api.set_paused(DAG_ID, False)
        started = time.monotonic()
        run_id = api.trigger(DAG_ID, {"source_uri": f"s3://{DATASET_BUCKET}/{DATASET_PREFIX}", "photos_per_shard": 100_000})
        run = api.wait_for_run(DAG_ID, run_id, 1800, alive=stack.check_alive)
        wall = time.monotonic() - started
        if run["state"] != "success":
            raise SystemExit(f"{name}: the run ended {run['state']}")
        ti = next(t for t in api.task_instances(DAG_ID, run_id) if t["task_id"] == "crop_shard")
        log = api.task_log(DAG_ID, run_id, "crop_shard", map_index=0)
    photos = people * 7 + 12
    crop_rate = re.findall(r"crop: \d+/\d+ photos \(100%\), ([\d.]+) photos/s", log)
    ran = re.search(r"detection ran in (\d+) worker process|detection ran in (this) process", log)
    return {
        "executor": name, "photos": photos, "task_s": _seconds(ti), "task_rate": photos / _seconds(ti),
        "crop_rate": float(crop_rate[-1]) if crop_rate else float("nan"),
        "processes": (ran.group(1) or "1") if ran else "?", "run_s": wall,
    }


def build_parser() -> argparse.ArgumentParser:
    """The command line, apart so tests/test_docs.py can check documented commands against it."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--people", type=int, default=60, help="person folders (7 photos each), plus 12 eval photos")
    parser.add_argument("--executors", nargs="+", default=list(SETUPS), choices=list(SETUPS))
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    rows = []
    for name in args.executors:
        print(f"{name}: starting the deployment and one run...", file=sys.stderr, flush=True)
        rows.append(measure(name, args.people))
    base = rows[0]["task_rate"]
    print(f"\n{'executor':<22}{'photos':>7}{'crop_shard s':>14}{'photos/s':>10}{'vs first':>10}{'crop log/s':>12}"
          f"{'processes':>11}{'run s':>8}")
    for r in rows:
        print(f"{r['executor']:<22}{r['photos']:>7}{r['task_s']:>14.1f}{r['task_rate']:>10.1f}{r['task_rate'] / base:>9.2f}x"
              f"{r['crop_rate']:>12.1f}{r['processes']:>11}{r['run_s']:>8.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
