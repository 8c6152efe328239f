#!/usr/bin/env bash
# The test command: the README's second command, and what scripts/matrix.sh (so .ci/run) runs per Airflow
# version. Installs the system packages the suite needs (scripts/system-packages.sh: Chromium for
# tests/e2e), sets up the venv if needed, runs pytest. Extra arguments go to pytest (e.g. scripts/test.sh
# -k emulator). Both setup steps are cheap when already done.
# AIRFLOW_VERSION / VENV choose the venv as in scripts/bootstrap.sh.
#
# The suite runs in PYTEST_WORKERS pytest-xdist workers (default 2, the cores CI has), whole test files
# to a worker (--dist loadfile: a module's fixtures, the e2e suite's Airflow services, stay in one
# process); each worker has its own AIRFLOW_HOME and database (tests/conftest.py). PYTEST_WORKERS=0
# runs it in this one process (needed for pytest's -s or --pdb).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/system-packages.sh
bash scripts/bootstrap.sh
workers=${PYTEST_WORKERS:-2}
exec "$(bash scripts/bootstrap.sh --venv-path)/bin/python" -m pytest -n "$workers" --dist loadfile "$@"
