#!/usr/bin/env bash
# Create or refresh .venv/ from requirements-dev.txt (what runs, plus tests, demo and
# benchmarks); a no-op when it is already up to date.
# Also puts plugins/ on the venv's path (a .pth file), as Airflow does for its plugins
# folder, so `python -m facecrop_ops` and the tests import the library from the checkout.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
stamp=.venv/.requirements.sha256
want=$(cat requirements.txt requirements-dev.txt | sha256sum | cut -d' ' -f1)
if [[ ! -x .venv/bin/python || ! -f $stamp || $(cat "$stamp") != "$want" ]]; then
    echo "bootstrap: installing requirements into .venv (a few minutes the first time)" >&2
    [[ -x .venv/bin/python ]] || "$PY" -m venv .venv
    .venv/bin/python -m pip install --quiet --upgrade pip
    .venv/bin/python -m pip install --quiet -r requirements-dev.txt
    echo "$want" > "$stamp"
fi
site=$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
echo "$PWD/plugins" > "$site/facecrop_plugins.pth"
