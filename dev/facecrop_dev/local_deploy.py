"""A deployed Airflow on this machine, as docker-compose.yaml describes it, without Docker.

PostgreSQL and Redis (Debian's packages), moto's S3 server in place of MinIO, a UDP sink in
place of the StatsD exporter, and the compose file's Airflow services (init, API server, scheduler, DAG processor, Celery workers
on the default and `gpu` queues) run as local processes on 127.0.0.1 with the environment
the compose file gives them: read from it, with service hosts and container paths mapped
to local ones. The deployment tests and the executor benchmark run on it; a person can too:

    .venv/bin/python -m facecrop_dev.local_deploy      # prints the UI's address; Ctrl-C stops all
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from facecrop_dev import compose, samples
from facecrop_dev.airflow_api import AirflowApi, ApiError
from facecrop_dev.local_run import airflow_bin
from facecrop_dev.local_s3 import LocalS3, free_port, moto_server
from facecrop_dev.local_services import LOCALHOST, Process, StatsdSink, postgres, redis, statsd_sink, wait_until
from facecrop_ops.config.names import DAG_ID

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "docker-compose.yaml"
DATASET_BUCKET, DATASET_PREFIX = "facecrop", "dataset/"  # where compose's airflow-init writes samples
INIT = "airflow-init"
SERVICES = ("airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "airflow-worker", "airflow-worker-gpu")

# Flags added to the compose file's commands here, and why:
LOCAL_FLAGS: dict[str, list[str]] = {
    # Only loopback; one uvicorn worker is plenty for a test on 2 cores.
    "api-server": ["--host", LOCALHOST, "--port", "{api_port}", "--workers", "1"],
    # Their log servers would listen on every interface; the API server reads logs from disk.
    "scheduler": ["--skip-serve-logs"],
    "celery worker": ["--skip-serve-logs", "--celery-hostname", "{service}@%h"],
}


@dataclass
class Stack:
    """A running deployment: its REST API, its S3, where its files and logs are."""

    home: Path
    api_url: str
    s3: LocalS3
    statsd: StatsdSink  # receives what Airflow sends the compose file's StatsD exporter
    passwords: dict[str, str]  # of the compose file's Airflow users, as .env gives them
    processes: list[Process] = field(default_factory=list)
    _api: AirflowApi | None = None

    def api(self) -> AirflowApi:
        """The REST API as the admin user (one client, closed with the stack)."""
        if self._api is None:
            self._api = AirflowApi(self.api_url, "admin", self.passwords["admin"])
        return self._api

    def check_alive(self) -> None:
        for p in self.processes:
            p.check()

    def process(self, service: str) -> Process:
        return next(p for p in self.processes if p.name == service)


def compose_file() -> dict[str, Any]:
    import yaml

    return yaml.safe_load(COMPOSE_FILE.read_text())


def _variables(pg_password: str, s3: LocalS3, settings: Mapping[str, str]) -> dict[str, str]:
    """What `.env` and the shell would give `docker compose`: fresh secrets, plus settings."""
    return {
        "POSTGRES_PASSWORD": pg_password,
        "FACECROP_S3_ACCESS_KEY": s3.access_key,
        "FACECROP_S3_SECRET_KEY": s3.secret_key,
        "MINIO_ROOT_PASSWORD": secrets.token_hex(16),  # no MinIO here: moto's S3 plays it
        "AIRFLOW_JWT_SECRET": secrets.token_hex(16),
        "AIRFLOW_API_SECRET_KEY": secrets.token_hex(16),
        "AIRFLOW_ADMIN_PASSWORD": secrets.token_urlsafe(12),
        "AIRFLOW_REVIEWER_PASSWORD": secrets.token_urlsafe(12),
        **settings,
    }


def service_env(svc: compose.Service, hosts: Mapping[str, str], home: Path, extra: Mapping[str, str]) -> dict[str, str]:
    """The service's compose environment pointed at local programs, on top of a clean one."""
    paths = {"/opt/airflow/dags": str(REPO / "dags"), "/opt/airflow/plugins": str(REPO / "plugins"),
             "/opt/airflow/logs": str(home / "logs"), "/opt/airflow": str(home)}
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "FACECROP_"))}
    env.update(
        # What the image and its volumes provide in a container:
        AIRFLOW_HOME=str(home),
        AIRFLOW__CORE__DAGS_FOLDER=str(REPO / "dags"),
        AIRFLOW__CORE__PLUGINS_FOLDER=str(REPO / "plugins"),
        PATH=f"{airflow_bin().parent}{os.pathsep}{os.environ.get('PATH', '')}",
    )
    env.update({k: compose.localize(v, hosts, paths) for k, v in svc.environment.items()})
    # StatsD's host and port are two settings, not a URL: point them at what plays the exporter.
    statsd = hosts.get(env.get("AIRFLOW__METRICS__STATSD_HOST", ""))
    if statsd:
        env["AIRFLOW__METRICS__STATSD_HOST"], env["AIRFLOW__METRICS__STATSD_PORT"] = statsd.split(":")
    env.update(extra)
    return env


def _argv(svc: compose.Service, fills: Mapping[str, str]) -> list[str]:
    if svc.entrypoint:  # airflow-init: its own bash script
        return [*svc.entrypoint, *svc.command]
    flags = next((f for cmd, f in LOCAL_FLAGS.items() if " ".join(svc.command).startswith(cmd)), [])
    return [str(airflow_bin()), *svc.command, *(f.format(**fills) for f in flags)]


@contextmanager
def deployed_airflow(
    workdir: Path | None = None,
    *,
    settings: Mapping[str, str] | None = None,
    extra_env: Mapping[str, str] | None = None,
    services: Sequence[str] = SERVICES,
    dataset: Iterator[tuple[str, bytes]] | None = None,
    timeout: float = 240,
) -> Iterator[Stack]:
    """Start the deployment; stop all of it on exit. `settings` are compose variables
    (FACECROP_SCHEDULE, FACECROP_GPU_QUEUE...); `extra_env` overrides Airflow settings the
    compose file fixes (e.g. AIRFLOW__CORE__EXECUTOR); `dataset` goes to s3://facecrop/dataset/
    before airflow-init runs (which then leaves it as it is)."""
    own_workdir = workdir is None
    workdir = Path(tempfile.mkdtemp(prefix="facecrop-stack-")) if own_workdir else workdir
    home, logs = workdir / "airflow", workdir / "service-logs"
    home.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        if own_workdir:
            stack.callback(shutil.rmtree, workdir, True)
        s3 = stack.enter_context(moto_server())
        pg = stack.enter_context(postgres(logs))
        redis_port = stack.enter_context(redis(logs))
        statsd = stack.enter_context(statsd_sink())
        api_port = free_port()
        hosts = {"postgres": f"{LOCALHOST}:{pg.port}", "redis": f"{LOCALHOST}:{redis_port}",
                 "minio": s3.endpoint_url.split("://", 1)[1], "airflow-apiserver": f"{LOCALHOST}:{api_port}",
                 "statsd-exporter": f"{LOCALHOST}:{statsd.port}"}
        variables = _variables(pg.password, s3, settings or {})
        defined = compose.airflow_services(compose_file(), variables, profiles=("gpu",))
        if dataset is not None:
            s3.upload(DATASET_BUCKET, DATASET_PREFIX, dataset)
        passwords = {"admin": variables["AIRFLOW_ADMIN_PASSWORD"], "reviewer": variables["AIRFLOW_REVIEWER_PASSWORD"]}
        running = Stack(home, f"http://{LOCALHOST}:{api_port}", s3, statsd, passwords)
        stack.callback(lambda: [p.stop() for p in reversed(running.processes)])
        stack.callback(lambda: running._api and running._api.close())
        for name in (INIT, *services):
            svc = defined[name]
            env = service_env(svc, hosts, home, extra_env or {})
            process = Process(name, _argv(svc, {"api_port": str(api_port), "service": name}), logs / f"{name}.log", env, cwd=home)
            running.processes.append(process)
            if name == INIT:
                try:
                    code = process.popen.wait(timeout)
                except subprocess.TimeoutExpired:
                    code = None
                running.processes.remove(process)
                process.stop()
                if code != 0:
                    raise RuntimeError(f"{INIT} failed ({code}); end of {process.log}:\n{process.log_tail()}")
        _wait_ready(running, timeout)
        yield running


def _wait_ready(stack: Stack, timeout: float) -> None:
    """Until the API answers, the scheduler is healthy, the DAG is parsed and workers listen."""
    import httpx

    def healthy() -> bool:
        health = httpx.get(f"{stack.api_url}/api/v2/monitor/health", timeout=5).json()
        return health["metadatabase"]["status"] == "healthy" and health["scheduler"]["status"] == "healthy"

    wait_until(healthy, "the API server and a healthy scheduler", timeout, stack.processes)
    api = stack.api()

    def dag_parsed() -> bool:
        try:
            return api.get(f"/dags/{DAG_ID}")["dag_id"] == DAG_ID
        except ApiError:
            errors = api.get("/importErrors")["import_errors"]
            if errors:
                raise RuntimeError(f"the DAG folder failed to import: {errors}") from None
            return False

    wait_until(dag_parsed, f"the DAG processor to parse {DAG_ID}", timeout, stack.processes)
    workers = [p for p in stack.processes if p.name.startswith("airflow-worker")]
    wait_until(lambda: all(" ready." in p.log_tail(100_000) for p in workers), "the Celery workers", timeout, stack.processes)


def build_parser() -> argparse.ArgumentParser:
    """The command line, apart so tests/test_docs.py can check documented commands against it."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--people", type=int, default=12, help="person folders in the sample dataset (7 photos each)")
    parser.add_argument("--schedule", default="", help="FACECROP_SCHEDULE, e.g. @daily (default: manual runs only)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings = {"FACECROP_GPU_QUEUE": "gpu", "FACECROP_SCHEDULE": args.schedule}
    print("starting PostgreSQL, Redis, S3 and Airflow on 127.0.0.1 (about a minute)...", flush=True)
    with deployed_airflow(settings=settings, dataset=samples.dataset(args.people, 12)) as stack:
        print(f"Airflow UI: {stack.api_url}  (DAG {DAG_ID}; source s3://{DATASET_BUCKET}/{DATASET_PREFIX})")
        print(f"log in as admin / {stack.passwords['admin']} or reviewer / {stack.passwords['reviewer']}")
        print(f"service logs: {stack.home.parent / 'service-logs'}; Ctrl-C stops everything", flush=True)
        for sig in (signal.SIGINT, signal.SIGTERM):  # also when started in the background
            signal.signal(sig, signal.default_int_handler)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            print("stopping...", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
