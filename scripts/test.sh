#!/usr/bin/env bash
# Install what the tests need (.venv/) and run them all; extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
exec .venv/bin/python -m pytest "$@"
