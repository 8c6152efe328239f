#!/usr/bin/env bash
# The README's first command: set everything up on a fresh machine, then run the demo against the
# bundled CData emulator. It stops everything it started.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
exec .venv/bin/python scripts/demo.py "$@"
