"""Figure 5: what a DAG file pays to import the operators and the sensor, once ``airflow.sdk`` is loaded.

Each sample is a fresh interpreter (nothing cached in ``sys.modules``) that imports ``airflow.sdk``
first, then times ``import airflow_provider_cdata.operators, airflow_provider_cdata.sensors``; the
figure is the median. ``python -X importtime`` then names the heaviest modules that import pulls in.
"""

from __future__ import annotations

import os
import re
import statistics
import subprocess
import sys

from benchmarks.common import Row
from benchmarks.emulator_process import EmulatorProcess

SAMPLES = 9
GOAL_MS = 30.0
PROVIDER_MODULES = "airflow_provider_cdata.operators, airflow_provider_cdata.sensors"
TIMED = (
    "import time, airflow.sdk\n"
    "started = time.perf_counter()\n"
    f"import {PROVIDER_MODULES}\n"
    "print((time.perf_counter() - started) * 1000)\n"
)
IMPORT_TIME = re.compile(r"^import time:\s+(\d+) \|\s+(\d+) \|(\s*)(\S+)$")


def _python(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, check=True, env=os.environ.copy()
    )


def import_ms() -> float:
    return float(_python("-c", TIMED).stdout.strip().splitlines()[-1])


def heaviest_imports(count: int = 4) -> list[tuple[str, float]]:
    """The provider import's heaviest top-level modules (cumulative ms), from ``-X importtime``."""
    done = _python("-X", "importtime", "-c", f"import airflow.sdk\nimport {PROVIDER_MODULES}")
    lines = done.stderr.splitlines()
    # Everything after airflow.sdk's own (last) line is what the provider import added.
    last_sdk = max(i for i, line in enumerate(lines) if line.rstrip().endswith(" airflow.sdk"))
    found: list[tuple[str, float]] = []
    for line in lines[last_sdk + 1 :]:
        match = IMPORT_TIME.match(line)
        if match and len(match.group(3)) <= 3:  # direct imports of the provider's modules and their deps
            found.append((match.group(4), int(match.group(2)) / 1000))
    return sorted(found, key=lambda item: -item[1])[:count]


def run(emulator: EmulatorProcess) -> list[Row]:
    samples = [import_ms() for _ in range(SAMPLES)]
    median = statistics.median(samples)
    heaviest = ", ".join(
        f"{name.removeprefix('airflow_provider_cdata.')} {cost:.1f}" for name, cost in heaviest_imports(3)
    )
    return [
        Row(
            "5 DAG-parse cost",
            f"import operators + sensors after airflow.sdk (median of {SAMPLES})",
            f"{median:.1f} ms",
            f"<= {GOAL_MS:.0f} ms",
            median <= GOAL_MS,
        ),
        Row("5 DAG-parse cost", "heaviest provider modules in it (ms, -X importtime)", heaviest),
    ]
