"""The gpu-pool watcher's judgement."""


import pytest

from facecrop_ops import tasks
from tests.facecrop_ops.tasks.helpers import RUN


def test_the_pool_watcher_is_satisfied_once_a_shard_leaves_scheduled():
    waiting = {RUN: {"crop_shard_0": "scheduled", "crop_shard_1": None}}
    assert tasks.gpu_pool_started(waiting, 10, 1800, "gpu") is False
    for state in ("queued", "running", "success", "failed", "up_for_retry"):
        assert tasks.gpu_pool_started({RUN: {"crop_shard_0": "scheduled", "crop_shard_1": state}}, 5000, 1800, "gpu")


def test_the_pool_watcher_names_the_fix_after_waiting_too_long():
    with pytest.raises(tasks.RunError) as err:
        tasks.gpu_pool_started({RUN: {"crop_shard_0": "scheduled"}}, 1800, 1800, "gpu")
    assert str(err.value) == (
        "no crop_shard task has started after 0:30:00 waiting in the Airflow pool 'gpu': the pool is missing or has "
        'no free slot. Create it with `airflow pools set gpu 1 "GPU workers"` (or in the UI: Admin > Pools), or set '
        "FACECROP_GPU_POOL to an existing pool. The run goes on by itself once a shard starts; this check retries until then"
    )
