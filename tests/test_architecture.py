"""The layout's rules, checked on every test run: import-linter's contracts in pyproject.toml
(layers import downward only; pure modules import neither torch, OpenCV, Airflow nor boto3;
what deploys never imports the dev package), ruff, and what the package and image contain."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def test_import_contracts_hold():
    result = subprocess.run([str(BIN / "lint-imports"), "--no-cache"], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert re.search(r"Contracts: 3 kept, 0 broken", result.stdout), result.stdout[-2000:]


def test_ruff_finds_nothing():
    result = subprocess.run([str(BIN / "ruff"), "check", "--no-cache", "plugins", "dev", "dags", "tests", "benchmarks"],
                            cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-4000:]


def test_the_wheel_holds_the_library_its_template_and_the_console_script_and_no_dev_module(tmp_path):
    """Built from what docker/Dockerfile copies into the image, in a folder of its own (a build
    in the checkout would leave build/ and egg-info behind)."""
    src = tmp_path / "src"
    for name in ("pyproject.toml", "README.md"):
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / name, src / name)
    shutil.copytree(REPO / "plugins/facecrop_ops", src / "plugins/facecrop_ops", ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--quiet", "-w", str(tmp_path),
                    str(src)], check=True, capture_output=True)
    (wheel,) = tmp_path.glob("facecrop_ops-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    modules = {n for n in names if n.endswith(".py")}
    assert modules == {p.relative_to(REPO / "plugins").as_posix() for p in (REPO / "plugins/facecrop_ops").rglob("*.py")}
    assert {"facecrop_ops/reporting/templates/report.html.j2", "facecrop_ops/review/templates/review.html.j2",
            "facecrop_ops/vision/models/face_detection_yunet_2023mar.onnx",
            "facecrop_ops/vision/models/LICENSE-face_detection_yunet"} <= set(names)  # the second detector's model and licence
    assert not [n for n in names if n.startswith(("facecrop_dev", "tests", "benchmarks"))]
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    entry_points = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "facecrop = facecrop_ops.cli:main" in entry_points
    assert "facecrop_review = facecrop_ops.review.plugin:FaceReviewPlugin" in entry_points  # how Airflow finds the plugin


def test_the_image_copies_no_dev_tooling_into_what_runs():
    """docker/Dockerfile's runtime stage (what every service runs) copies only the requirements,
    the project file and the library; the dev package goes into the seed stage alone."""
    stages = re.split(r"(?m)^FROM ", (REPO / "docker/Dockerfile").read_text())[1:]
    runtime = next(s for s in stages if s.split("\n", 1)[0].endswith("AS runtime"))
    copied = [src for line in runtime.splitlines() if line.startswith("COPY")
              for src in line.split()[1:-1] if not src.startswith("--")]
    assert copied == ["requirements.txt", "pyproject.toml", "README.md", "plugins/facecrop_ops"], copied
    final = stages[-1].split("\n", 1)[0].strip()
    assert final == "runtime", "the image built by default must be the runtime stage"
    ignored = (REPO / ".dockerignore").read_text().split()
    assert {".env", ".venv", ".git", "tests", "benchmarks"} <= set(ignored)
