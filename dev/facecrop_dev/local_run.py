"""Run the facecrop_etl DAG on this machine: local S3 API, SQLite Airflow, `airflow dags test`.

This is the README's main command (scripts/demo.sh) and what the end-to-end tests drive.
It starts moto's S3 server on 127.0.0.1, uploads a sample dataset built from real face
photos, points an Airflow connection at it (environment variable), creates the `gpu`
pool, runs the DAG, prints where everything went and the per-class table, and stops the
server.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from facecrop_dev import samples
from facecrop_dev.local_s3 import LocalS3, moto_server
from facecrop_ops.config.names import DAG_ID
from facecrop_ops.dataset import manifest
from facecrop_ops.dataset.run_folder import RUNS_DIR
from facecrop_ops.reporting import metrics

REPO = Path(__file__).resolve().parents[2]
BUCKET, PREFIX = "facecrop-demo", "dataset/"


def airflow_env(home: Path, s3: LocalS3) -> dict[str, str]:
    """Environment for a throwaway SQLite Airflow that sees this repo's dags/ and plugins/."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env.update(
        AIRFLOW_HOME=str(home),
        AIRFLOW__CORE__DAGS_FOLDER=str(REPO / "dags"),
        AIRFLOW__CORE__PLUGINS_FOLDER=str(REPO / "plugins"),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__CORE__PARALLELISM="4",  # LocalExecutor would start 32 workers (~4 GB)
        AIRFLOW__LOGGING__LOGGING_LEVEL="INFO",
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        PYTHONPATH=os.pathsep.join(filter(None, [str(REPO / "plugins"), os.environ.get("PYTHONPATH")])),
        **s3.airflow_connection_env(),
    )
    return env


def airflow_bin() -> Path:
    return Path(sys.executable).parent / "airflow"


def airflow(env: Mapping[str, str], *args: str, quiet: bool = False) -> subprocess.CompletedProcess:
    cmd = [str(airflow_bin()), *args]
    out = subprocess.PIPE if quiet else None
    result = subprocess.run(cmd, env=dict(env), stdout=out, stderr=out, text=True)
    if result.returncode != 0:
        if quiet:
            sys.stderr.write((result.stdout or "")[-4000:] + (result.stderr or "")[-4000:])
        raise SystemExit(f"`airflow {' '.join(args[:3])}` failed with exit code {result.returncode}")
    return result


def prepare_airflow(env: Mapping[str, str]) -> None:
    airflow(env, "db", "migrate", quiet=True)
    airflow(env, "pools", "set", "gpu", "1", "GPU workers: one shard detects at a time", quiet=True)


def latest_run_dir(s3: LocalS3, bucket: str, prefix: str) -> str:
    runs = s3.client().list_objects_v2(Bucket=bucket, Prefix=f"{prefix}{RUNS_DIR}/", Delimiter="/")
    dirs = sorted(p["Prefix"] for p in runs.get("CommonPrefixes", []))
    if not dirs:
        raise SystemExit("the run wrote no reports")
    return dirs[-1]


def summarize(s3: LocalS3, bucket: str, prefix: str, home: Path) -> str:
    client = s3.client()
    run = latest_run_dir(s3, bucket, prefix)
    rows = manifest.loads(client.get_object(Bucket=bucket, Key=run + "manifest.csv")["Body"].read().decode())
    keys = [o["Key"] for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
            for o in page.get("Contents", [])]
    faces = [k for k in keys if "/faces/" in k]
    csvs = [k for k in keys if k.endswith("_face.csv")]
    return "\n".join([
        "",
        metrics.table(metrics.per_class(rows)),
        "",
        f"faces:   {len(faces)} objects under s3://{bucket}/{prefix}<split>/faces/ (e.g. {faces[0] if faces else '-'})",
        f"CSVs:    {', '.join(f's3://{bucket}/{k}' for k in csvs)}",
        f"reports: s3://{bucket}/{run} (manifest.csv, metrics.json, rejects.csv, plan.json)",
        f"local S3 was {s3.endpoint_url} (stopped now); Airflow home {home}",
    ])


def build_parser() -> argparse.ArgumentParser:
    """The command line, apart so tests/test_docs.py can check documented commands against it."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--people", type=int, default=12, help="person folders in the sample dataset (7 photos each)")
    parser.add_argument("--eval", type=int, default=12, help="eval photos")
    parser.add_argument("--home", type=Path, default=REPO / ".demo" / "airflow", help="AIRFLOW_HOME to use")
    parser.add_argument("--conf", default="{}", help="extra DAG params as JSON, e.g. '{\"min_face_size\": 40}'")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.home.mkdir(parents=True, exist_ok=True)
    with moto_server() as s3:
        count = s3.upload(BUCKET, PREFIX, samples.dataset(args.people, args.eval))
        print(f"local S3 at {s3.endpoint_url}: uploaded {count} objects to s3://{BUCKET}/{PREFIX}", flush=True)
        env = airflow_env(args.home, s3)
        prepare_airflow(env)
        conf = {"source_uri": f"s3://{BUCKET}/{PREFIX}", "photos_per_shard": 40, **json.loads(args.conf)}
        print(f"airflow dags test {DAG_ID} --conf '{json.dumps(conf)}'", flush=True)
        airflow(env, "dags", "test", DAG_ID, "--conf", json.dumps(conf))
        print(summarize(s3, BUCKET, PREFIX, args.home))
    return 0


if __name__ == "__main__":
    sys.exit(main())
