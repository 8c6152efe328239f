#!/usr/bin/env bash
# The test command: the README's second command and what .ci/run calls. Installs the system packages the
# suite needs (scripts/system-packages.sh: Chromium for tests/e2e), sets up the venv if needed, runs pytest.
# Extra arguments go to pytest (e.g. scripts/test.sh -k emulator). Both steps are cheap when already done.
# AIRFLOW_VERSION / VENV choose the venv as in scripts/bootstrap.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/system-packages.sh
bash scripts/bootstrap.sh
exec "$(bash scripts/bootstrap.sh --venv-path)/bin/python" -m pytest "$@"
