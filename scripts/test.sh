#!/usr/bin/env bash
# The test command: the README's second command and what .ci/run calls. Sets up .venv if needed.
# Extra arguments go to pytest (e.g. scripts/test.sh -k emulator).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
exec .venv/bin/python -m pytest "$@"
