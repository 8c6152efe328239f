#!/usr/bin/env bash
# The whole test suite (e2e, the connection form in Chromium and the package check included) on every
# Airflow the package supports: the default (3.3.2) and the latest patch of each older supported minor.
# .ci/run calls it; the README documents it next to scripts/test.sh, which it runs once per version.
#
#   MATRIX="3.3.2 3.1.8"   the versions to run (default: all of SUPPORTED below, newest first)
#   MATRIX_JOBS=2          how many versions' suites run at the same time (default 2): the suite waits on
#                          servers and timeouts about half of its time, so two versions share 2 cores well;
#                          each one runs in PYTEST_WORKERS (default 2) pytest-xdist workers (scripts/test.sh).
#   MATRIX_PACKAGE=all     the package check (tests/test_package.py's wheel test, ~2-3 min) on every
#                          version; by default only on the first (3.3.2): a matrix in .ci/run must stay under 30 min.
#                          `AIRFLOW_VERSION=X.Y.Z bash scripts/check-package.sh` runs it for one version.
#   extra arguments go to pytest on every version (e.g. scripts/matrix.sh -m 'not e2e')
#   --setup                only set up the venvs (side by side), run nothing (.ci/run does it during the lint)
#   --table                only print the table of the last runs (from artifacts/matrix/)
#
# Each version runs `AIRFLOW_VERSION=X.Y.Z bash scripts/test.sh` (its own venv, .venv-X.Y; .venv for the
# default); the venvs are set up first, side by side. Each run's output goes to artifacts/matrix/<version>.log
# and its results to <version>.xml, the form test's screenshots to artifacts/form-<version>/; then a
# table, one line a version: tests passed/failed, the e2e suite's, whether the running api-server served
# the connection form, the form test in Chromium, the package check, the wall time. (test.sh installs the
# system packages, as for everyone.) Exits non-zero when any version failed. A version goes into SUPPORTED
# (and pyproject.toml's floor follows) only when its whole suite passes here: README.md, "Supported Airflow
# versions".
set -euo pipefail
cd "$(dirname "$0")/.."
SUPPORTED="3.3.2 3.2.2 3.1.8"
read -r -a versions <<< "${MATRIX:-$SUPPORTED}"
out=artifacts/matrix
mkdir -p "$out"

table_only=0
setup_only=0
if [[ "${1:-}" == "--table" ]]; then  # only the table, from the last runs' artifacts/matrix/<version>.xml
  table_only=1
  shift
elif [[ "${1:-}" == "--setup" ]]; then
  setup_only=1
  shift
fi
failed=0
if [[ $table_only -eq 0 ]]; then
echo "== venvs: ${versions[*]}"
pids=()
for version in "${versions[@]}"; do
  AIRFLOW_VERSION=$version bash scripts/bootstrap.sh > "$out/$version.bootstrap.log" 2>&1 &
  pids+=("$!")
done
for i in "${!versions[@]}"; do
  if ! wait "${pids[$i]}"; then
    cat "$out/${versions[$i]}.bootstrap.log" >&2
    echo "matrix: setting up Airflow ${versions[$i]} failed" >&2
    exit 1
  fi
done
if [[ $setup_only -eq 1 ]]; then
  exit 0
fi

PACKAGE_TEST=tests/test_package.py::test_the_wheel_in_a_clean_venv_lists_the_provider_and_runs_the_demo
run_one() {  # one version's suite; its log, JUnit XML and wall time under artifacts/matrix/
  local version=$1 status=0 start
  shift
  local skip=()
  if [[ "$version" != "${versions[0]}" && "${MATRIX_PACKAGE:-}" != "all" ]]; then
    skip=(--deselect "$PACKAGE_TEST")
  fi
  rm -f "$out/$version.xml"
  start=$(date +%s)
  AIRFLOW_VERSION=$version bash scripts/test.sh -p no:cacheprovider --junitxml="$out/$version.xml" \
    "${skip[@]}" "$@" > "$out/$version.log" 2>&1 || status=$?
  echo "$(( $(date +%s) - start ))" > "$out/$version.seconds"
  return $status
}

jobs_at_once=${MATRIX_JOBS:-2}
declare -A running=()  # pid -> version
report() {  # a finished version: its last lines, and the failures' summary so a CI log says what broke
  local version=$1 status=$2
  echo "== Airflow $version done ($(cat "$out/$version.seconds") s, exit $status; log: $out/$version.log)"
  tail -n 2 "$out/$version.log"
  if [[ $status -ne 0 ]]; then
    failed=1
    grep -E '^(FAILED|ERROR) ' "$out/$version.log" | head -n 40 || true
  fi
}
wait_for_one() {
  local pid status=0
  wait -n -p pid "${!running[@]}" || status=$?
  report "${running[$pid]}" "$status"
  unset "running[$pid]"
}
for version in "${versions[@]}"; do
  while [[ ${#running[@]} -ge $jobs_at_once ]]; do
    wait_for_one
  done
  echo "== tests on Airflow $version started (log: $out/$version.log)"
  run_one "$version" "$@" &
  running[$!]=$version
done
while [[ ${#running[@]} -gt 0 ]]; do
  wait_for_one
done
fi

python3 - "$out" "${versions[@]}" <<'EOF'
"""The table: per version, from pytest's JUnit XML."""
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

out, versions = Path(sys.argv[1]), sys.argv[2:]
# The connection form as Airflow serves it: hook_meta in-process, and from the running api-server (e2e).
FORM_TESTS = ("hook_meta", "test_the_api_server_serves_the_cdata_connection_form")
# A user making a cdata connection in the Airflow UI, in Chromium (tests/e2e; screenshots artifacts/form-X/).
BROWSER_FORM_TEST = "test_a_cdata_connection_made_in_the_airflow_ui_form"
print()
print(
    "| Airflow | tests passed / failed | e2e passed / failed | connection form served "
    "| form in Chromium | package check | wall time |"
)
print("|---|---|---|---|---|---|---|")
for version in versions:
    seconds = int((out / f"{version}.seconds").read_text())
    report = out / f"{version}.xml"
    if not report.is_file():
        print(f"| {version} | did not run (see {out}/{version}.log) | | | | | {seconds // 60} min {seconds % 60} s |")
        continue
    counts = {"all": [0, 0], "e2e": [0, 0], "form": [0, 0], "browser": [0, 0], "package": [0, 0]}
    skipped = 0
    for case in ET.parse(report).iter("testcase"):
        if case.find("skipped") is not None:  # the suite has none; a skip would hide a failure
            skipped += 1
            continue
        bad = case.find("failure") is not None or case.find("error") is not None
        name = f"{case.get('classname')}.{case.get('name')}"
        groups = ["all"]
        if case.get("classname", "").startswith("tests.e2e."):
            groups.append("e2e")
        if any(mark in name for mark in FORM_TESTS):
            groups.append("form")
        if BROWSER_FORM_TEST in name:
            groups.append("browser")
        if "test_the_wheel_in_a_clean_venv" in name:
            groups.append("package")
        for group in groups:
            counts[group][bad] += 1
    (passed, failed), (e2e_passed, e2e_failed), (form_passed, form_failed), browser, package_counts = (
        counts.values()
    )
    form = "yes" if form_passed and not form_failed else ("no" if form_failed else "not checked")
    shots = len(list((out.parent / f"form-{version}").glob("*.png")))
    in_browser = "failed" if browser[1] else (f"passed ({shots} screenshots)" if browser[0] else "not run")
    package = "failed" if package_counts[1] else ("passed" if package_counts[0] else "not run")
    skips = f" ({skipped} skipped)" if skipped else ""
    print(
        f"| {version} | {passed} / {failed}{skips} | {e2e_passed} / {e2e_failed} | {form} | {in_browser} | {package} "
        f"| {seconds // 60} min {seconds % 60} s |"
    )
EOF
echo "Logs and JUnit XML: $out/; the form test's screenshots: $(dirname "$out")/form-<version>/"
exit $failed
