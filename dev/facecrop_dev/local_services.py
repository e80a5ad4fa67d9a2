"""Servers a deployed Airflow needs, started on 127.0.0.1 as plain processes: PostgreSQL and
Redis from Debian's packages (installed with apt-get when missing), no systemd, no Docker.

Each process gets its own process group and log file; stopping a service stops the whole
group, so nothing a test or the local stack starts outlives it.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from facecrop_dev.local_s3 import free_port

LOCALHOST = "127.0.0.1"
T = TypeVar("T")


class ServiceError(RuntimeError):
    """A service could not be installed or started; the message says which and why."""


class CannotInstall(ServiceError):
    """A program is missing and this machine cannot install it (not root, not Debian)."""


class Process:
    """A started program: its own process group, output to `log`, stopped as a group."""

    def __init__(self, name: str, argv: Sequence[str], log: Path, env: Mapping[str, str] | None = None,
                 cwd: Path | None = None) -> None:
        self.name, self.log = name, log
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("ab") as out:
            self.popen = subprocess.Popen(list(argv), stdout=out, stderr=subprocess.STDOUT, env=None if env is None else dict(env),
                                          cwd=cwd, start_new_session=True)

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""

    def check(self) -> None:
        """Raise with the end of its log when it has exited."""
        if not self.alive():
            raise ServiceError(f"{self.name} exited with code {self.popen.returncode}; end of {self.log}:\n{self.log_tail()}")

    def group_alive(self) -> bool:
        """Whether anything of its process group is still running."""
        try:
            os.killpg(self.popen.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:  # a member runs as another user (runuser's postgres): still there
            return True
        return True

    def stop(self, timeout: float = 30) -> None:
        """SIGTERM to the program itself, so it shuts down its own children in order (warm
        shutdown for Celery, smart shutdown for PostgreSQL once its clients are gone); then
        SIGKILL whatever is left of its process group."""
        try:
            self.popen.terminate()
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            pass
        try:
            os.killpg(self.popen.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.popen.wait(10)


def wait_until(check: Callable[[], T], what: str, timeout: float, watch: Sequence[Process] = (), every: float = 0.5,
               tolerate: tuple[type[BaseException], ...] = (Exception,)) -> T:
    """Poll `check` until it returns something true, and return that; fail fast with the log
    of a watched process that died. Errors of the `tolerate` kinds mean "not ready yet"
    (connection refused, 503...)."""
    deadline = time.monotonic() + timeout
    while True:
        for p in watch:
            p.check()
        try:
            value = check()
            if value:
                return value
        except tolerate:
            pass
        if time.monotonic() > deadline:
            raise ServiceError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(every)


def ensure_debian_packages(programs: Mapping[str, str]) -> None:
    """Install the Debian package of each missing program ({program path or glob: package})
    with apt-get. Raises ServiceError saying why when that is impossible."""
    missing = sorted({pkg for prog, pkg in programs.items() if not _find(prog)})
    if not missing:
        return
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise CannotInstall(f"{', '.join(missing)} missing and apt-get unavailable here (needs root on Debian): "
                           f"install them with `apt-get install {' '.join(missing)}`")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for argv in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing]):
        done = subprocess.run(argv, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            raise ServiceError(f"`{' '.join(argv)}` failed ({done.returncode}):\n{(done.stdout + done.stderr)[-2000:]}")


def _find(program: str) -> str | None:
    if "*" in program:
        found = sorted(Path("/").glob(program.lstrip("/")))
        return str(found[-1]) if found else None
    return shutil.which(program) or (program if Path(program).exists() else None)


def _owned_tmpdir(prefix: str, user: str | None) -> Path:
    """A fresh folder the service's user owns (pytest's tmp folders are root-only)."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    if user:
        shutil.chown(path, user, user)
    return path


@dataclass(frozen=True)
class Postgres:
    port: int
    user: str
    password: str = ""


@contextmanager
def postgres(log_dir: Path, user: str = "airflow", password: str | None = None, database: str = "airflow") -> Iterator[Postgres]:
    """A throwaway PostgreSQL cluster on 127.0.0.1: `user` is its superuser, `database`
    exists. Debian's binaries; as root the server runs as the `postgres` system user."""
    ensure_debian_packages({"/usr/lib/postgresql/*/bin/postgres": "postgresql"})
    bindir = Path(_find("/usr/lib/postgresql/*/bin/postgres")).parent
    run_as = "postgres" if os.geteuid() == 0 else None
    sudo = ["runuser", "-u", run_as, "--"] if run_as else []
    password = password or secrets.token_hex(16)
    data = _owned_tmpdir("facecrop-pg-", run_as)
    pwfile = data / "pw"
    pwfile.write_text(password)
    if run_as:
        shutil.chown(pwfile, run_as, run_as)
    cluster = data / "cluster"
    done = subprocess.run([*sudo, str(bindir / "initdb"), "-D", str(cluster), "-U", user, f"--pwfile={pwfile}",
                           "--auth=scram-sha-256", "--encoding=UTF8", "--no-sync"], capture_output=True, text=True)
    pwfile.unlink()
    if done.returncode != 0:
        shutil.rmtree(data, ignore_errors=True)
        raise ServiceError(f"initdb failed: {done.stderr[-2000:]}")
    port = free_port()
    server = Process("postgres", [*sudo, str(bindir / "postgres"), "-D", str(cluster), "-p", str(port), "-k", str(data),
                                  "-c", f"listen_addresses={LOCALHOST}", "-c", "fsync=off", "-c", "synchronous_commit=off",
                                  "-c", "full_page_writes=off", "-c", "max_connections=200"], log_dir / "postgres.log")
    try:
        pg = Postgres(port, user, password)
        env = {**os.environ, "PGPASSWORD": password}
        wait_until(lambda: subprocess.run([str(bindir / "pg_isready"), "-h", LOCALHOST, "-p", str(port)],
                                          capture_output=True).returncode == 0, "postgres to accept connections", 60, [server])
        created = subprocess.run([str(bindir / "createdb"), "-h", LOCALHOST, "-p", str(port), "-U", user, database],
                                 env=env, capture_output=True, text=True)
        if created.returncode != 0:
            raise ServiceError(f"createdb failed: {created.stderr}")
        yield pg
    finally:
        server.stop()
        shutil.rmtree(data, ignore_errors=True)


@contextmanager
def redis(log_dir: Path) -> Iterator[int]:
    """A Redis server on 127.0.0.1 with nothing persisted; yields its port."""
    ensure_debian_packages({"redis-server": "redis-server"})
    port = free_port()
    server = Process("redis", [_find("redis-server"), "--port", str(port), "--bind", LOCALHOST, "--save", "",
                               "--appendonly", "no", "--daemonize", "no"], log_dir / "redis.log")
    try:
        def ping() -> bool:
            return subprocess.run([_find("redis-cli") or "redis-cli", "-p", str(port), "ping"], capture_output=True,
                                  text=True).stdout.strip() == "PONG"

        wait_until(ping, "redis to answer PING", 30, [server])
        yield port
    finally:
        server.stop()


class StatsdSink:
    """What a StatsD server receives, on a UDP port of 127.0.0.1: datagrams split into lines
    ("airflow.facecrop.miss_rate.mask1:0.25|g"), kept in order."""

    def __init__(self) -> None:
        import socket
        import threading

        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((LOCALHOST, 0))
        self.sock.settimeout(0.2)  # so the thread sees close() soon
        self.closed = False
        self.port: int = self.sock.getsockname()[1]
        self.lines: list[str] = []
        self._thread = threading.Thread(target=self._receive, name="statsd-sink", daemon=True)
        self._thread.start()

    def _receive(self) -> None:
        while not self.closed:
            try:
                data = self.sock.recv(65535)
            except TimeoutError:
                continue
            except OSError:  # closed
                return
            self.lines.extend(line for line in data.decode(errors="replace").splitlines() if line)

    def gauges(self, prefix: str) -> dict[str, float]:
        """The last value of each gauge whose name starts with `prefix`."""
        out = {}
        for line in list(self.lines):
            name, _, rest = line.partition(":")
            value, _, kind = rest.partition("|")
            if name.startswith(prefix) and kind.startswith("g"):
                out[name] = float(value)
        return out

    def close(self) -> None:
        self.closed = True
        self._thread.join(5)
        self.sock.close()


@contextmanager
def statsd_sink() -> Iterator[StatsdSink]:
    sink = StatsdSink()
    try:
        yield sink
    finally:
        sink.close()
