#!/usr/bin/env bash
# The README's first command: set everything up on a fresh machine, then run the demo against the
# bundled CData emulator. It stops everything it started. AIRFLOW_VERSION / VENV as in bootstrap.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
exec "$(bash scripts/bootstrap.sh --venv-path)/bin/python" scripts/demo.py "$@"
