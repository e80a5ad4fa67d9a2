#!/usr/bin/env bash
# The main job on local sample photos: build a small portrait dataset and crop it with the CLI.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
rm -rf .demo && mkdir -p .demo
.venv/bin/python - <<'PY'
from pathlib import Path
from facecrop_ops import samples
for key, data in samples.dataset(n_people=6, n_eval=6):
    path = Path(".demo/data") / key
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
PY
exec .venv/bin/python -m facecrop_ops crop .demo/data .demo/out "$@"
