"""Run every benchmark against the emulator (in its own process) and print one table.

    .venv/bin/python -m benchmarks            # all figures, ~6 minutes on 2 cores
    .venv/bin/python -m benchmarks --only 1 4 # some of them

The table also goes to benchmarks/results.md, with the command and a note on the machine.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import sys
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

if __package__ in (None, ""):  # `python benchmarks/run.py`: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import Row
from benchmarks.emulator_process import EmulatorProcess, fresh_airflow_home, log_path

RESULTS = Path(__file__).resolve().parent / "results.md"
FIGURES = ("1", "3", "4", "5", "6", "7", "8")  # 2 comes with 1


def _figures() -> dict[str, Callable[[EmulatorProcess], list[Row]]]:
    from benchmarks import (
        bulk_refresh,
        client_cpu,
        emulator_throughput,
        hook_overhead,
        parse_cost,
        waiting_triggers,
    )

    return {
        "1": hook_overhead.run,
        "3": bulk_refresh.run,
        "4": waiting_triggers.run,
        "5": parse_cost.run,
        "6": emulator_throughput.run,
        "7": client_cpu.run,
        "8": bulk_refresh.run_at_scale,
    }


def table(rows: list[Row]) -> str:
    header = ("figure", "measure", "value", "goal", "")
    cells = [header, *[(r.figure, r.measure, r.value, r.goal, r.verdict) for r in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |" for row in cells]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def headroom(rows: list[Row]) -> list[Row]:
    """The highest request rate any figure asked of the emulator, against what it can serve."""
    capacity = max((r.rate for r in rows if r.rate and r.figure.startswith("6")), default=None)
    asked = [r for r in rows if r.rate and not r.figure.startswith("6")]
    if capacity is None or not asked:
        return []
    busiest = max(asked, key=lambda r: r.rate or 0.0)
    share = (busiest.rate or 0.0) / capacity
    return [
        Row(
            "6 emulator",
            f"highest rate asked by a figure ({busiest.figure.split(' ')[0]})",
            f"{busiest.rate:,.0f} calls/s = {share:.0%} of capacity",
            "< 100%",
            share < 1.0,
        )
    ]


def machine() -> str:
    system = f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs"
    return (
        f"{system}, Python {platform.python_version()}, emulator and client in separate processes on loopback"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=FIGURES, help="run only these figures")
    parser.add_argument("--no-save", action="store_true", help=f"do not write {RESULTS.name}")
    args = parser.parse_args(argv)
    fresh_airflow_home()
    figures = _figures()
    rows: list[Row] = []
    started = time.monotonic()
    print(f"Airflow's and the provider's log lines go to {log_path()}", file=sys.stderr)
    with open(log_path(), "w", encoding="utf-8") as log, contextlib.redirect_stdout(log):
        for number in args.only or FIGURES:
            # A fresh emulator per figure: no figure inherits another's connections, accounts or faults.
            with EmulatorProcess.start() as emulator:
                print(f"figure {number} ...", file=sys.stderr, flush=True)
                rows.extend(figures[number](emulator))
    rows.extend(headroom(rows))
    text = table(rows)
    print(text)
    missed = [r for r in rows if r.met is False]
    print(f"\n{len(rows)} rows, {len(missed)} goals missed, {time.monotonic() - started:.0f} s")
    if not args.no_save and not args.only:
        command = ".venv/bin/python -m benchmarks"
        when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        note = "What each figure measures, and why a missed goal is missed: README.md here."
        RESULTS.write_text(
            f"# Benchmark results\n\n`{command}`, {when}; {machine()}.\n\n{text}\n\n{note}\n",
            encoding="utf-8",
        )
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
