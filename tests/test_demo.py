"""The README's first command, minus the venv set-up: scripts/demo.py runs the three example DAGs."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import REPO


def test_the_demo_runs_all_three_example_dags_to_success() -> None:
    done = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "demo.py")],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=REPO,
    )
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    assert "Demo OK: all three DAG runs succeeded." in done.stdout
    assert "the sensor deferred: its trigger polled CData" in done.stdout
    assert "polled CData 0 time(s)" not in done.stdout
    assert "Emulator stopped." in done.stdout
