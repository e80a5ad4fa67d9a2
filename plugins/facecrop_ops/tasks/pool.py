"""The `watch_gpu_pool` sensor's judgement: has any shard got a slot of the gpu pool yet?"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from facecrop_ops.reporting.progress import format_duration
from facecrop_ops.tasks.context import RunError

WAITING_STATES = (None, "none", "scheduled")


def gpu_pool_started(task_states: Mapping[str, Mapping[str, Any]], waited_s: float, limit_s: float, pool: str) -> bool:
    """True once any crop_shard instance has left `scheduled` (the pool gave it a slot).
    After `limit_s` of waiting, raise: with Airflow 3.3 a missing pool is otherwise silent."""
    states = [state for run in task_states.values() for state in run.values()]
    if any(state not in WAITING_STATES for state in states):
        return True
    if waited_s >= limit_s:
        raise RunError(
            f"no crop_shard task has started after {format_duration(waited_s)} waiting in the Airflow pool {pool!r}: "
            f"the pool is missing or has no free slot. Create it with `airflow pools set {pool} 1 \"GPU workers\"` "
            "(or in the UI: Admin > Pools), or set FACECROP_GPU_POOL to an existing pool. The run goes on by itself "
            "once a shard starts; this check retries until then"
        )
    return False
