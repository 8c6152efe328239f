"""Run ``python -m airflow_provider_cdata.emulator`` as a real process, for the CLI tests."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from airflow_provider_cdata.emulator.process import emulator_process, parse_startup


@contextmanager
def emulator_cli(*args: str) -> Iterator[str]:
    """Run the emulator CLI on a free port until it says it is serving; yield what it printed.

    On leaving, one SIGINT stops it; one that does not stop in bounded time is killed (and the test
    fails). The process is reaped whatever happens, a failing test included.
    """
    with emulator_process("--port", "0", *args) as emu:
        yield emu.startup.output


def served_api_url(output: str) -> str:
    """The API root the CLI printed (``CData emulator serving http://127.0.0.1:PORT/api``)."""
    return parse_startup(output).api_url
