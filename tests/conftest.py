"""Shared fixtures: real face photos built from skimage's astronaut at test time."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

# Before anything imports Airflow: a throwaway home, so tests never write ~/airflow.
os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="facecrop-airflow-home-"))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")

import pytest

from facecrop_dev import samples


@pytest.fixture(scope="session")
def sample_dataset() -> dict[str, bytes]:
    """A small dataset in the real layout (6 people x 7 classes, 6 eval photos, CSVs, junk)."""
    return dict(samples.dataset(n_people=6, n_eval=6, junk=True))


@pytest.fixture()
def dataset_dir(tmp_path: Path, sample_dataset: dict[str, bytes]) -> Path:
    root = tmp_path / "data"
    for key, data in sample_dataset.items():
        path = root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


@pytest.fixture(scope="session")
def hard_photos() -> list:
    """Two hard sittings of real faces (facecrop_dev.hard_sittings): 000001_astronaut, where
    MTCNN misses four masked photos, and 000004_hopper, where it misses one."""
    from facecrop_dev import hard_sittings

    return [*hard_sittings.sitting(0), *hard_sittings.sitting(3)]
