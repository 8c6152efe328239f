"""Figure 5: what a DAG file pays to import the operators and the sensor, once ``airflow.sdk`` is loaded.

Each sample is a fresh interpreter (nothing cached in ``sys.modules``) that imports ``airflow.sdk``
first, then times ``import airflow_provider_cdata.operators, airflow_provider_cdata.sensors``; the
figure is the median. Two installs, side by side:

* what a user's DAG processor pays: the provider's wheel, built here and installed by pip (which
  compiles its bytecode) into a scratch venv that sees this venv's packages (Airflow) and not the
  source tree;
* the editable install with no bytecode of the provider's own (``PYTHONDONTWRITEBYTECODE=1``, as this
  figure was measured before): its modules are compiled from source on every run, everything else is
  read from bytecode (a ``PYTHONPYCACHEPREFIX`` warmed first, the provider's entries removed).

``python -X importtime`` then names the heaviest modules that import pulls in (editable install).
"""

from __future__ import annotations

import os
import re
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

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


ROOT = Path(__file__).resolve().parent.parent


def _python(*args: str, python: str = sys.executable, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [python, *args],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, **env},
        cwd=tempfile.gettempdir(),  # never the source tree: it would shadow the installed provider
    )


def import_ms(python: str = sys.executable, **env: str) -> float:
    return float(_python("-c", TIMED, python=python, **env).stdout.strip().splitlines()[-1])


def source_cache(cache: str) -> str:
    """A bytecode cache (``PYTHONPYCACHEPREFIX``) holding every module the import uses except the
    provider's own, whose source is then compiled on every run, as with no bytecode written."""
    import_ms(PYTHONPYCACHEPREFIX=cache, PYTHONDONTWRITEBYTECODE="")  # writes all it imports
    shutil.rmtree(Path(cache + str(ROOT)) / "airflow_provider_cdata")
    return cache


def no_bytecode_ms(cache: str) -> float:
    """One sample of the editable install, the provider's modules compiled from source."""
    return import_ms(PYTHONDONTWRITEBYTECODE="1", PYTHONPYCACHEPREFIX=cache)


def wheel_venv(where: Path) -> str:
    """Build the wheel and pip-install it (bytecode compiled, no dependencies) into a scratch venv at
    ``where`` that reads this venv's site-packages through a .pth file; its python."""
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(where / "dist"), str(ROOT)],
        check=True,
        capture_output=True,
    )
    wheel = next((where / "dist").glob("airflow_provider_cdata-*.whl"))
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(where / "venv")], check=True)
    python = str(where / "venv" / "bin" / "python")
    site = _python("-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])", python=python)
    # A path line only: this venv's own .pth files (the editable install's finder) are not run there.
    Path(site.stdout.strip(), "_outer_venv.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--quiet", str(wheel)],
        check=True,
        capture_output=True,
    )
    installed = _python("-c", "import airflow_provider_cdata as p; print(p.__file__)", python=python)
    assert installed.stdout.strip().startswith(str(where / "venv")), installed.stdout
    return python


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
    with tempfile.TemporaryDirectory(prefix="cdata-parse-") as scratch:
        wheel_python = wheel_venv(Path(scratch))
        cache = source_cache(str(Path(scratch, "pycache")))
        wheel, editable = [], []
        for _ in range(SAMPLES):  # side by side: one sample of each in turn
            wheel.append(import_ms(wheel_python))
            editable.append(no_bytecode_ms(cache))
    heaviest = ", ".join(
        f"{name.removeprefix('airflow_provider_cdata.')} {cost:.1f}" for name, cost in heaviest_imports(3)
    )
    return [
        Row(
            "5 DAG-parse cost",
            f"import operators + sensors after airflow.sdk, wheel with bytecode (median of {SAMPLES})",
            f"{statistics.median(wheel):.1f} ms",
            f"<= {GOAL_MS:.0f} ms",
            statistics.median(wheel) <= GOAL_MS,
        ),
        Row(
            "5 DAG-parse cost",
            f"the same, editable install, no bytecode (median of {SAMPLES})",
            f"{statistics.median(editable):.1f} ms",
            f"<= {GOAL_MS:.0f} ms",
            statistics.median(editable) <= GOAL_MS,
        ),
        Row("5 DAG-parse cost", "heaviest provider modules in it (ms, -X importtime)", heaviest),
    ]
