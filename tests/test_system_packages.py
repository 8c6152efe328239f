"""The test command sets up the system packages the suite needs: scripts/system-packages.sh.

The installer runs here against stand-ins for ``dpkg-query``, ``apt-get``, ``id`` and ``sudo`` (a PATH of
small scripts that log how they were called), so a fresh machine, a non-root user and a machine without apt
can be played without uninstalling anything; one test runs it for real, on what this machine has.
"""

from __future__ import annotations

import os
import stat
import subprocess
import time
from pathlib import Path
from typing import Any, cast

import pytest

from tests.conftest import REPO

SCRIPT = REPO / "scripts" / "system-packages.sh"
COMMAND = "bash scripts/system-packages.sh"


def commands(script: Path) -> list[str]:
    return [
        line.strip() for line in script.read_text().splitlines() if line.strip() and not line.startswith("#")
    ]


def stub(folder: Path, name: str, body: str) -> None:
    path = folder / name
    path.write_text(f'#!/bin/bash\necho "{name} $*" >> {folder / "calls.log"}\n{body}\n')
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


def machine(tmp_path: Path, installed: set[str], uid: int = 0, sudo: str | None = None) -> Path:
    """A PATH holding only stand-ins: dpkg-query knows ``installed``; apt-get succeeds; id -u is ``uid``."""
    folder = tmp_path / "bin"
    folder.mkdir()
    known = " ".join(sorted(installed))
    stub(
        folder,
        "dpkg-query",
        f'for p in {known}; do [[ "${{@: -1}}" == "$p" ]] && {{ printf installed; exit 0; }}; done; exit 1',
    )
    stub(folder, "apt-get", "exit 0")
    stub(folder, "id", f"echo {uid}")
    if sudo is not None:
        stub(folder, "sudo", sudo)
    return folder


def run(path: Path | None, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {"PATH": str(path) if path else "/nonexistent", "HOME": os.environ.get("HOME", "/")}
    environment.update(env)
    return subprocess.run(
        ["/bin/bash", str(SCRIPT)],
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        stdin=subprocess.DEVNULL,
        cwd=REPO,
    )


def calls(folder: Path) -> list[str]:
    log = folder / "calls.log"
    return log.read_text().splitlines() if log.exists() else []


def test_the_test_command_installs_the_system_packages_before_pytest_and_ci_calls_it_per_version() -> None:
    steps = commands(REPO / "scripts" / "test.sh")
    pytest_step = next(i for i, step in enumerate(steps) if "-m pytest" in step)
    assert COMMAND in steps[:pytest_step]
    # .ci/run runs the matrix (README: scripts/matrix.sh), which runs that same test command per version.
    ci = commands(REPO / ".ci" / "run")
    assert any(step.startswith("bash scripts/matrix.sh ||") for step in ci), ci
    matrix = commands(REPO / "scripts" / "matrix.sh")
    assert any("bash scripts/test.sh" in step for step in matrix), matrix
    assert not any("system-packages" in step for step in ci + matrix), (
        ".ci/run should get its system packages from the test command, like everyone else"
    )


def test_the_e2e_error_for_a_missing_chromium_names_the_installer(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from tests.e2e import browser

    monkeypatch.setattr(browser, "CHROMIUM", tmp_path / "no-chromium-here")
    with pytest.raises(FileNotFoundError) as missing:
        browser.launch_chromium(cast(Any, None))  # fails before it touches Playwright
    assert COMMAND in str(missing.value)
    # ... and that command is the one that installs Debian's chromium.
    folder = machine(tmp_path, installed=set())
    done = run(folder)
    assert done.returncode == 0, done.stderr
    assert any(call.startswith("apt-get") and " chromium" in call for call in calls(folder))


def test_a_fresh_machine_gets_apt_get_update_then_only_the_missing_packages(tmp_path: Path) -> None:
    folder = machine(tmp_path, installed={"fonts-dejavu-core"})
    done = run(folder)
    assert done.returncode == 0, done.stderr
    apt = [call for call in calls(folder) if call.startswith("apt-get")]
    assert len(apt) == 2
    assert apt[0].endswith(" update -qq")
    assert " install -y " in apt[1]
    assert apt[1].endswith(" --no-install-recommends chromium")
    assert "installing chromium" in done.stdout


def test_when_everything_is_installed_it_only_asks_dpkg(tmp_path: Path) -> None:
    folder = machine(tmp_path, installed={"chromium", "fonts-dejavu-core"})
    done = run(folder)
    assert done.returncode == 0, done.stderr
    assert "chromium fonts-dejavu-core already installed" in done.stdout
    assert not any(call.startswith(("apt-get", "sudo")) for call in calls(folder))


def test_without_root_or_sudo_it_stops_at_once_with_the_one_command_to_run(tmp_path: Path) -> None:
    folder = machine(tmp_path, installed={"fonts-dejavu-core"}, uid=1000)
    done = run(folder)
    assert done.returncode == 1
    assert "sudo apt-get update && sudo apt-get install -y --no-install-recommends chromium" in done.stderr
    assert not any(call.startswith("apt-get") for call in calls(folder))


def test_a_user_with_passwordless_sudo_installs_through_sudo(tmp_path: Path) -> None:
    folder = machine(tmp_path, installed=set(), uid=1000, sudo='[[ "$1" == -n ]] && exit 0; exec "$@"')
    done = run(folder)
    assert done.returncode == 0, done.stderr
    sudo = [call for call in calls(folder) if call.startswith("sudo apt-get")]
    assert len(sudo) == 2
    assert sudo[1].endswith("chromium fonts-dejavu-core")


def test_a_user_whose_sudo_wants_a_password_and_has_no_terminal_is_told_the_command(tmp_path: Path) -> None:
    folder = machine(tmp_path, installed=set(), uid=1000, sudo="exit 1")
    done = run(folder)
    assert done.returncode == 1
    assert "sudo apt-get install -y --no-install-recommends chromium fonts-dejavu-core" in done.stderr


def test_a_machine_without_apt_is_told_what_to_install_and_how_to_go_on(tmp_path: Path) -> None:
    done = run(None)
    assert done.returncode == 1
    assert "chromium fonts-dejavu-core" in done.stderr
    assert "CDATA_E2E_CHROMIUM" in done.stderr
    assert "CDATA_SKIP_SYSTEM_PACKAGES=1" in done.stderr
    skipped = run(None, CDATA_SKIP_SYSTEM_PACKAGES="1")
    assert skipped.returncode == 0, skipped.stderr
    assert "skipped" in skipped.stdout


def test_on_this_machine_the_packages_are_there_and_the_check_is_cheap() -> None:
    """The real dpkg: scripts/test.sh ran the installer before this session, so nothing is missing."""
    began = time.monotonic()
    done = subprocess.run(
        ["bash", str(SCRIPT)], capture_output=True, text=True, timeout=60, check=False, cwd=REPO
    )
    elapsed = time.monotonic() - began
    assert done.returncode == 0, done.stderr
    assert "already installed" in done.stdout, done.stdout + done.stderr
    assert elapsed < 5, f"{elapsed:.1f} s for a check that is one dpkg-query"
