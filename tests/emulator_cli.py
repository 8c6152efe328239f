"""Run ``python -m airflow_provider_cdata.emulator`` as a real process, for the CLI tests."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def emulator_cli(*args: str) -> Iterator[str]:
    """Run the emulator CLI on a free port until it says it is serving; yield what it printed."""
    process = subprocess.Popen(
        [sys.executable, "-m", "airflow_provider_cdata.emulator", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    try:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line)
            if "serving" in line:
                break
        yield "".join(lines)
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=20)


def served_api_url(output: str) -> str:
    """The API root the CLI printed (``CData emulator serving http://127.0.0.1:PORT/api``)."""
    match = re.search(r"serving (http://\S+/api)", output)
    assert match, output
    return match.group(1)
