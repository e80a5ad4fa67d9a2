"""What to do when this machine cannot install a program a test needs (not root, not Debian)."""

from __future__ import annotations

import os
from typing import NoReturn

import pytest


def cannot_install(what: str, exc: Exception) -> NoReturn:
    """Skip, with the reason, on a developer's machine; fail where FACECROP_REQUIRE_SERVICES=1
    (`.ci/run` sets it), so the deployment, browser and promtool checks never pass in CI by
    being skipped."""
    if os.environ.get("FACECROP_REQUIRE_SERVICES") == "1":
        pytest.fail(f"{what}: {exc}")
    pytest.skip(f"{what}: {exc}")
