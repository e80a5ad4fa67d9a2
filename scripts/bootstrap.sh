#!/usr/bin/env bash
# Create or refresh .venv/ from requirements-dev.txt: what runs, the two packages of this
# repository installed editable (facecrop-ops from plugins/, facecrop-dev from dev/), and the
# test, demo and benchmark tools. A no-op when it is already up to date.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
stamp=.venv/.requirements.sha256
want=$(cat requirements.txt requirements-dev.txt dev/requirements.txt pyproject.toml dev/pyproject.toml | sha256sum | cut -d' ' -f1)
if [[ ! -x .venv/bin/python || ! -f $stamp || $(cat "$stamp") != "$want" ]]; then
    echo "bootstrap: installing requirements into .venv (a few minutes the first time)" >&2
    [[ -x .venv/bin/python ]] || "$PY" -m venv .venv
    .venv/bin/python -m pip install --quiet --upgrade pip
    .venv/bin/python -m pip install --quiet -r requirements-dev.txt
    echo "$want" > "$stamp"
fi
