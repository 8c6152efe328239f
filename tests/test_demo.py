"""The README's first command, minus the venv set-up: scripts/demo.py runs the four example DAGs."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import REPO


def test_the_demo_runs_all_four_example_dags_to_success() -> None:
    done = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "demo.py")],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=REPO,
    )
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    assert "Demo OK: every run of the four example DAGs succeeded." in done.stdout
    assert "the sensor deferred: its trigger polled CData" in done.stdout
    assert "polled CData 0 time(s)" not in done.stdout
    assert "Emulator stopped." in done.stdout
    assert "child account 'Acme Corp'" in done.stdout, "onboarding created the tenant's account"
    assert "deleted 1 connection(s), then child account(s)" in done.stdout, "and offboarding removed it"
