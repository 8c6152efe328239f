#!/usr/bin/env bash
# Create .venv and install the provider with its development tools. Idempotent: a venv that already
# has this pyproject.toml installed is reused, unless FRESH=1 asks for a fresh one (.ci/run does).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
AIRFLOW_VERSION=${AIRFLOW_VERSION:-3.3.2}
stamp=.venv/.installed-$(sha1sum pyproject.toml | cut -c1-12)-$AIRFLOW_VERSION

if [[ "${FRESH:-}" == "1" ]]; then
  rm -rf .venv
fi
if [[ -f "$stamp" ]]; then
  exit 0
fi
echo "Setting up .venv (Python: $($PYTHON --version), Airflow $AIRFLOW_VERSION) ..."
"$PYTHON" -m venv .venv
# pip's and the build backend's chatter goes to a log, shown only when the install fails.
if ! { .venv/bin/python -m pip install --quiet --upgrade pip \
       && .venv/bin/python -m pip install --quiet -e ".[dev]" "apache-airflow==$AIRFLOW_VERSION"; } \
     > .venv/install.log 2>&1; then
  cat .venv/install.log >&2
  echo "Installing into .venv failed (log above, also in .venv/install.log)." >&2
  exit 1
fi
rm -f .venv/.installed-*
touch "$stamp"
echo "Installed: $(.venv/bin/python -c 'import airflow, airflow_provider_cdata as p; print("airflow", airflow.__version__, "/ airflow-provider-cdata", p.__version__)')"
