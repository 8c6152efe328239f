#!/usr/bin/env bash
# Create the venv and install the provider (editable) with its development tools and one Airflow version.
#
#   AIRFLOW_VERSION  the Airflow to install (default 3.3.2). Its minor's pins, constraints/airflow-X.Y.txt,
#                    are applied with pip's -c: what pip needs, without Airflow's own constraint files, to
#                    give that Airflow dependencies it works with (see constraints/README.md).
#   VENV             where the venv goes: default .venv for the default Airflow, .venv-X.Y for another one
#                    (so a CI matrix can keep several side by side).
#   FRESH=1          a new venv even if one is there (.ci/run does this).
#   PYTHON           the interpreter to make it with (default python3).
#
# Idempotent: a venv whose stamp matches pyproject.toml, the pins file and the Airflow version is reused.
# `bootstrap.sh --venv-path` / `--airflow-version` print the venv's path / the Airflow version (after the
# same defaults) and do nothing else.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
DEFAULT_AIRFLOW=3.3.2
AIRFLOW_VERSION=${AIRFLOW_VERSION:-$DEFAULT_AIRFLOW}
if [[ ! "$AIRFLOW_VERSION" =~ ^([0-9]+)\.([0-9]+)\.[0-9]+$ ]]; then
  echo "AIRFLOW_VERSION must be a release like 3.1.8, not '$AIRFLOW_VERSION'" >&2
  exit 1
fi
minor=${BASH_REMATCH[1]}.${BASH_REMATCH[2]}
if [[ "$AIRFLOW_VERSION" == "$DEFAULT_AIRFLOW" ]]; then
  VENV=${VENV:-.venv}
else
  VENV=${VENV:-.venv-$minor}
fi
case "${1:-}" in
  --venv-path) echo "$VENV"; exit 0 ;;
  --airflow-version) echo "$AIRFLOW_VERSION"; exit 0 ;;
esac

pins=constraints/airflow-$minor.txt
constraint=()
if [[ -f "$pins" ]]; then
  constraint=(-c "$pins")
else
  echo "Warning: no $pins, so nothing caps what pip picks for Airflow $AIRFLOW_VERSION (not measured here)." >&2
  pins=/dev/null
fi
stamp=$VENV/.installed-$(cat pyproject.toml "$pins" | sha1sum | cut -c1-12)-$AIRFLOW_VERSION

if [[ "${FRESH:-}" == "1" ]]; then
  rm -rf "$VENV"
fi
if [[ -f "$stamp" ]]; then
  exit 0
fi
echo "Setting up $VENV (Python: $($PYTHON --version), Airflow $AIRFLOW_VERSION${constraint:+, pins $pins}) ..."
"$PYTHON" -m venv "$VENV"
# pip's and the build backend's chatter goes to a log, shown only when the install fails.
if ! { "$VENV/bin/python" -m pip install --quiet --upgrade pip \
       && "$VENV/bin/python" -m pip install --quiet -e ".[dev]" "apache-airflow==$AIRFLOW_VERSION" \
            "${constraint[@]}"; } > "$VENV/install.log" 2>&1; then
  cat "$VENV/install.log" >&2
  echo "Installing into $VENV failed (log above, also in $VENV/install.log)." >&2
  exit 1
fi
rm -f "$VENV"/.installed-*
touch "$stamp"
echo "Installed in $VENV: $("$VENV/bin/python" -c 'import airflow, airflow_provider_cdata as p; print("airflow", airflow.__version__, "/ airflow-provider-cdata", p.__version__)')"
