"""The package as users get it (scripts/check-package.sh), and the per-Airflow pins its install line uses."""

from __future__ import annotations

import os
import re
import subprocess

import pytest
from packaging.requirements import Requirement

from airflow_provider_cdata import __version__
from tests.conftest import REPO

CONSTRAINTS = REPO / "constraints"


def bootstrap(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if k not in ("AIRFLOW_VERSION", "VENV")} | env
    return subprocess.run(
        ["bash", "scripts/bootstrap.sh", *args],
        cwd=REPO,
        env=environment,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_every_airflow_minor_the_package_claims_has_a_pins_file() -> None:
    """From the floor in pyproject.toml up to the Airflow the project develops on: a measured pins file."""
    declared = re.search(r'"(apache-airflow>=[^"]+)"', (REPO / "pyproject.toml").read_text())
    assert declared, "no apache-airflow>= in pyproject.toml's dependencies"
    floor = next(s.version for s in Requirement(declared.group(1)).specifier if s.operator == ">=")
    low = tuple(int(part) for part in floor.split(".")[:2])
    default = bootstrap("--airflow-version").stdout.strip()
    high = tuple(int(part) for part in default.split(".")[:2])
    assert low[0] == high[0] == 3
    for minor in range(low[1], high[1] + 1):
        pins = CONSTRAINTS / f"airflow-3.{minor}.txt"
        assert pins.is_file(), f"no {pins.name}: measure what Airflow 3.{minor} needs (constraints/README.md)"
        text = pins.read_text()
        assert f"measured on 3.{minor}." in text
        for line in text.splitlines():
            requirement = line.split("#", 1)[0].strip()
            if requirement:  # pip -c takes names and versions only: no extras, URLs or editables
                parsed = Requirement(requirement)
                assert parsed.specifier, line
                assert not parsed.extras, line
                assert not parsed.url, line


def test_bootstrap_keeps_one_venv_per_airflow_minor_beside_the_default() -> None:
    assert bootstrap("--venv-path").stdout.strip() == ".venv"
    assert bootstrap("--venv-path", AIRFLOW_VERSION="3.1.8").stdout.strip() == ".venv-3.1"
    assert bootstrap("--venv-path", AIRFLOW_VERSION="3.1.8", VENV="/tmp/v").stdout.strip() == "/tmp/v"
    wrong = bootstrap("--venv-path", AIRFLOW_VERSION="3.1")
    assert wrong.returncode == 1
    assert "AIRFLOW_VERSION must be a release like 3.1.8" in wrong.stderr


@pytest.mark.package
@pytest.mark.timeout(900)
def test_the_wheel_in_a_clean_venv_lists_the_provider_and_runs_the_demo() -> None:
    """Build, twine check, the wheel's contents, a clean venv from README's install line, smoke and demo."""
    # The session's own Airflow settings (conftest's AIRFLOW_HOME, DAG bundles) stay out; the script
    # also drops them, but AIRFLOW_VERSION (a CI matrix's) goes through.
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW_") or k == "AIRFLOW_VERSION"}
    done = subprocess.run(
        ["bash", "scripts/check-package.sh"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=880,
        check=False,
    )
    out = done.stdout
    assert done.returncode == 0, out[-4000:] + done.stderr[-4000:]
    assert re.search(r"wheel-?\S*: PASSED", out.replace("\n", " ")) or out.count("PASSED") == 2, out
    assert "no tests/ or benchmarks/" in out
    assert f"airflow_provider_cdata {__version__} imported from the venv" in out
    assert re.search(
        rf"ok   providers list .*airflow-provider-cdata \|.*\| {re.escape(__version__)}$", out, re.M
    )
    assert re.search(r"ok   providers hooks .*cdata \| airflow_provider_cdata\.hooks\.CDataHook", out)
    assert "ok   connections test cdata_default (emulator)" in out
    assert "ok   api-server login + /api/v2/providers" in out
    assert "Demo OK: every run of the four example DAGs succeeded." in out
    assert "check-package: OK" in out
