"""What every task body starts from: the run's params parsed, its folder, and the errors that
end a task at once instead of being retried."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from facecrop_ops.config.run import ParamsError, RunParams, parse
from facecrop_ops.dataset.run_folder import RunFolder
from facecrop_ops.run_store import RunStore
from facecrop_ops.s3io import S3Store, StorageError, client_for


class RunError(RuntimeError):
    """The run cannot go on (no photos, missing CSV, lost shard); the message says why."""


@contextmanager
def fail_fast() -> Iterator[None]:
    """End a task at once, without retries, on errors a retry cannot fix (bad params, a missing
    CSV, bucket or shard, access refused): their message names the fix. Everything else (S3
    throttling, timeouts, a lost worker) is left to Airflow's retries."""
    try:
        yield
    except (ParamsError, RunError, StorageError, ValueError) as exc:
        from airflow.sdk.exceptions import AirflowFailException

        raise AirflowFailException(str(exc)) from None


def open_store(params: Mapping[str, Any]) -> S3Store:
    """An S3Store on the run's Airflow connection, sized for concurrent transfers."""
    from facecrop_ops.config import deployment

    threads = deployment.TRANSFER_THREADS
    return S3Store(client_for(params.get("aws_conn_id") or "aws_default", threads), threads, deployment.S3_RETRY_DELAYS)


@dataclass(frozen=True)
class RunContext:
    """One run as a task sees it: its params, its S3, facecrop's folder in the destination."""

    params: RunParams
    run_id: str
    s3: S3Store
    files: RunStore
    folder: RunFolder


def run_context(params: Mapping[str, Any], run_id: str, store: S3Store) -> RunContext:
    """Params are parsed first: a bad one stops the task before any S3 call."""
    rp = parse(params)
    files = RunStore(store, rp.dest)
    return RunContext(rp, run_id, store, files, files.run(run_id))
