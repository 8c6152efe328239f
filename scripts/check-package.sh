#!/usr/bin/env bash
# The package as users get it: build the sdist and the wheel (the wheel from the sdist, as `python -m build`
# does), `twine check` them, check what the wheel carries, install it into a clean venv the way README.md
# tells users to, and from there, with no checkout on the path: the smoke check (scripts/smoke.py: airflow
# version, providers list / hooks, db migrate, the emulator, connections test, the api-server) and the demo
# (scripts/demo.py: the four example DAGs against the emulator).
#
#   AIRFLOW_VERSION  the Airflow installed beside the wheel (default: bootstrap.sh's), with its minor's pins
#   KEEP=1           keep the work folder (it is also kept when a step fails)
#
# build and twine come from the development venv (scripts/bootstrap.sh makes it if needed).
# tests/test_package.py runs this in the default test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
# Nothing of the caller's Airflow set-up (the test session's AIRFLOW_HOME, DAG bundles...) may leak in.
AIRFLOW_VERSION=$(bash scripts/bootstrap.sh --airflow-version)
while read -r name; do unset "$name"; done < <(compgen -e | grep -E '^AIRFLOW_' | grep -vx AIRFLOW_VERSION || true)
unset PYTHONPATH VIRTUAL_ENV PYTHONHOME
minor=$(echo "$AIRFLOW_VERSION" | cut -d. -f1,2)
pins=$repo/constraints/airflow-$minor.txt
[[ -f "$pins" ]] || { echo "check-package: no $pins for Airflow $AIRFLOW_VERSION" >&2; exit 1; }
AIRFLOW_VERSION=$AIRFLOW_VERSION bash scripts/bootstrap.sh
tools=$(AIRFLOW_VERSION=$AIRFLOW_VERSION bash scripts/bootstrap.sh --venv-path)/bin/python
version=$("$tools" -c 'import re, sys; print(re.search(r"__version__ = \"(.+)\"", open(sys.argv[1]).read())[1])' \
  airflow_provider_cdata/__init__.py)

work=$(mktemp -d /tmp/cdata-package-XXXXXX)
ok=0
finish() {
  if [[ $ok == 1 && "${KEEP:-}" != "1" ]]; then rm -rf "$work"; else echo "check-package: work folder kept: $work"; fi
}
trap finish EXIT
quiet() {  # run a step with its output in a log, shown only when it fails
  local log=$work/$1.log; shift
  if ! "$@" > "$log" 2>&1; then
    tail -n 60 "$log" >&2
    echo "check-package: failed: $* (log: $log)" >&2
    exit 1
  fi
}

started=$SECONDS
echo "== build (sdist, then the wheel from it)"
quiet build "$tools" -m build --outdir "$work/dist" .
sdist=$work/dist/airflow_provider_cdata-$version.tar.gz
wheel=$work/dist/airflow_provider_cdata-$version-py3-none-any.whl
ls "$sdist" "$wheel" > /dev/null
echo "   $(basename "$sdist"), $(basename "$wheel")"

echo "== twine check --strict"
"$tools" -m twine --no-color check --strict "$sdist" "$wheel"

echo "== contents"
"$tools" - "$wheel" "$sdist" "$version" <<'EOF'
import subprocess, sys, tarfile, zipfile

wheel, sdist, version = sys.argv[1:]
names = zipfile.ZipFile(wheel).namelist()
tracked = subprocess.run(["git", "ls-files", "airflow_provider_cdata"], capture_output=True, text=True,
                         check=True).stdout.split()
problems = [f"wheel lacks {path}" for path in tracked if path not in names]
problems += [f"wheel carries {name}" for name in names
             if not name.startswith(("airflow_provider_cdata/", f"airflow_provider_cdata-{version}.dist-info/"))]
problems += [f"wheel carries {name}" for name in names if "__pycache__" in name or name.endswith(".pyc")]
info = f"airflow_provider_cdata-{version}.dist-info/"
entry_points = zipfile.ZipFile(wheel).read(info + "entry_points.txt").decode()
if "[apache_airflow_provider]" not in entry_points or "get_provider_info" not in entry_points:
    problems.append(f"no apache_airflow_provider entry point: {entry_points!r}")
for needed in ("airflow_provider_cdata/py.typed", "airflow_provider_cdata/emulator/__main__.py"):
    if needed not in names:
        problems.append(f"wheel lacks {needed}")
root = f"airflow_provider_cdata-{version}/"
in_sdist = [n.removeprefix(root) for n in tarfile.open(sdist).getnames()]
for needed in ("README.md", "CHANGELOG.md", "pyproject.toml", "airflow_provider_cdata/py.typed",
               "constraints/airflow-3.3.txt"):
    if needed not in in_sdist:
        problems.append(f"sdist lacks {needed}")
problems += [f"sdist carries {n}" for n in in_sdist if n.startswith(("tests/", "benchmarks/", ".ci/"))]
if problems:
    sys.exit("\n".join(problems))
modules = sum(n.endswith(".py") for n in names)
print(f"   wheel: {len(names)} files, {modules} modules, py.typed, the emulator, the provider entry point;"
      f" no tests/ or benchmarks/. sdist: {len(in_sdist)} entries, with constraints/ and CHANGELOG.md")
EOF

echo "== a clean venv: pip install \"apache-airflow==$AIRFLOW_VERSION\" $(basename "$wheel") -c constraints/$(basename "$pins")"
python3 -m venv "$work/venv"
quiet pip "$work/venv/bin/python" -m pip install --upgrade pip
quiet pip "$work/venv/bin/python" -m pip install "apache-airflow==$AIRFLOW_VERSION" "$wheel" -c "$pins"
# Run from a folder with no checkout in it: the copies of the two scripts and the example DAGs only.
mkdir -p "$work/run/scripts"
cp scripts/smoke.py scripts/demo.py "$work/run/scripts/"
cp -r dags_examples "$work/run/dags_examples"
cd "$work/run"
where=$("$work/venv/bin/python" -c 'import airflow_provider_cdata as p; print(p.__file__, p.__version__)')
case "$where" in
  "$work/venv/"*" $version") echo "   airflow_provider_cdata $version imported from the venv: ${where% *}" ;;
  *) echo "check-package: imported $where, not from $work/venv" >&2; exit 1 ;;
esac

echo "== smoke (scripts/smoke.py in the venv)"
"$work/venv/bin/python" scripts/smoke.py --airflow-version "$AIRFLOW_VERSION"

echo "== demo (scripts/demo.py in the venv)"
"$work/venv/bin/python" scripts/demo.py

ok=1
echo "check-package: OK: airflow-provider-cdata $version on Airflow $AIRFLOW_VERSION, $((SECONDS - started)) s"
