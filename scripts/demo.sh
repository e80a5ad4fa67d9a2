#!/usr/bin/env bash
# The main job on this machine: local S3 (moto's server on 127.0.0.1), a sample dataset of
# real face photos, SQLite Airflow, `airflow dags test facecrop_etl`. Installs .venv/ first.
# Extra arguments go to facecrop_dev.local_run (e.g. --people 30 --conf '{"min_face_size": 40}').
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
exec .venv/bin/python -m facecrop_dev.local_run "$@"
