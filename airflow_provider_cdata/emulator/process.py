"""The emulator CLI as a child process: start it, read its start-up line, stop it in bounded time.

Tests, ``scripts/demo.py`` and the docker-compose checks all run ``python -m airflow_provider_cdata.emulator``
this way:

>>> with emulator_process("--demo", "--port", "0") as emu:
...     emu.api_url                                      # 'http://127.0.0.1:40123/api'
...     emu.airflow_connection()                         # what --demo printed, as a dict

The CLI prints everything it has to say (the demo lines) before its start-up line,
``CData emulator serving <api url> (Ctrl-C to stop)``, and from then on one SIGINT or SIGTERM stops it
within :data:`~airflow_provider_cdata.emulator.server.STOP_TIMEOUT_SECONDS`. :func:`stop_process` sends that
one signal and kills the process if it is still there after the bound; the process is always reaped.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import IO, Any

SERVING = "CData emulator serving"
_SERVING_LINE = re.compile(rf"{SERVING} (?P<api>(?P<root>https?://\S+?)/api)\b")
_CONNECTION_LINE = re.compile(r"export AIRFLOW_CONN_CDATA_DEFAULT='(.*)'")
START_TIMEOUT_SECONDS = 60.0
# The CLI stops within server.STOP_TIMEOUT_SECONDS; this leaves room for a loaded machine.
STOP_WAIT_SECONDS = 15.0


def serving_line(api_url: str) -> str:
    """The CLI's start-up line: printed once the port is bound and a signal would stop the server."""
    return f"{SERVING} {api_url} (Ctrl-C to stop)"


class EmulatorProcessError(RuntimeError):
    """The emulator process did not start, or did not stop when told to."""


@dataclass
class Startup:
    """What the CLI printed up to and including its start-up line."""

    output: str
    api_url: str
    root_url: str

    def airflow_connection(self) -> dict[str, Any]:
        """The connection ``--demo`` printed (``export AIRFLOW_CONN_CDATA_DEFAULT='...'``)."""
        match = _CONNECTION_LINE.search(self.output)
        if not match:
            raise EmulatorProcessError(f"the emulator printed no demo connection (--demo):\n{self}")
        connection: dict[str, Any] = json.loads(match.group(1))
        return connection

    def __str__(self) -> str:
        return self.output


class _Reader:
    """Reads a child's output on a thread: up to the start-up line, then on, so the pipe never fills."""

    def __init__(self, stream: IO[str]) -> None:
        self._lines: list[str] = []
        self._lock = threading.Lock()
        self.serving = threading.Event()
        self.ended = threading.Event()
        thread = threading.Thread(target=self._read, args=(stream,), name="emulator-output", daemon=True)
        thread.start()

    def _read(self, stream: IO[str]) -> None:
        try:
            for line in stream:
                with self._lock:
                    self._lines.append(line)
                if SERVING in line:
                    self.serving.set()
        except ValueError:  # the stream was closed under us
            pass
        finally:
            self.ended.set()

    def output(self) -> str:
        with self._lock:
            return "".join(self._lines)

    def wait(self, timeout: float) -> bool:
        """Until the start-up line, the end of the output, or ``timeout``; whether the line came."""
        for _ in range(int(timeout * 20) + 1):
            if self.serving.wait(0.05) or self.ended.is_set():
                break
        return self.serving.is_set()


def read_startup(stream: IO[str], timeout: float = START_TIMEOUT_SECONDS) -> Startup:
    """Read a CLI's output until its start-up line; raise :class:`EmulatorProcessError` (with what it
    printed) when the output ends first or ``timeout`` passes. Output after the line keeps being read."""
    return _startup(_Reader(stream), timeout)


def parse_startup(output: str) -> Startup:
    """The start-up line's URLs in what the CLI printed; ``ValueError`` if it is not there."""
    served = _SERVING_LINE.search(output)
    if not served:
        raise ValueError(f"no start-up line ({SERVING} ...) in:\n{output}")
    end = output.find("\n", served.end())
    return Startup(
        output=output if end < 0 else output[: end + 1], api_url=served["api"], root_url=served["root"]
    )


def _startup(reader: _Reader, timeout: float) -> Startup:
    came = reader.wait(timeout)
    output = reader.output()
    if came:
        with suppress(ValueError):
            return parse_startup(output)
    why = "stopped" if reader.ended.is_set() else f"said nothing for {timeout:g} s"
    raise EmulatorProcessError(f"the emulator {why} before its start-up line:\n{output}")


def stop_process(
    process: subprocess.Popen[str],
    sig: int = signal.SIGINT,
    timeout: float = STOP_WAIT_SECONDS,
) -> int:
    """Send ``sig`` once and wait up to ``timeout`` s; then kill. Always reaps; returns the exit status.

    Raises :class:`EmulatorProcessError` after killing a process that did not stop on the signal.
    """
    if process.poll() is not None:
        return process.returncode
    process.send_signal(sig)
    try:
        return process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        raise EmulatorProcessError(
            f"the emulator (pid {process.pid}) did not stop within {timeout:g} s of "
            f"{signal.Signals(sig).name}; it was killed"
        ) from None


@dataclass
class EmulatorProcess:
    process: subprocess.Popen[str]
    startup: Startup
    _reader: _Reader = field(repr=False)

    @property
    def api_url(self) -> str:
        return self.startup.api_url

    @property
    def root_url(self) -> str:
        return self.startup.root_url

    @property
    def output(self) -> str:
        """Everything the process printed so far (when its stdout is read here)."""
        return self._reader.output()

    def airflow_connection(self) -> dict[str, Any]:
        return self.startup.airflow_connection()


def start_process(
    args: Sequence[str] = (),
    *,
    command: Sequence[str] | None = None,
    stderr_to_stdout: bool = True,
    start_timeout: float = START_TIMEOUT_SECONDS,
) -> EmulatorProcess:
    """Start the CLI with ``args`` (``command`` replaces ``python -m airflow_provider_cdata.emulator``) and
    return once it printed its start-up line. A process that does not get there is killed and reaped."""
    argv = [*(command or (sys.executable, "-m", "airflow_provider_cdata.emulator")), *args]
    process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT if stderr_to_stdout else None,
        text=True,
    )
    assert process.stdout is not None
    reader = _Reader(process.stdout)
    try:
        return EmulatorProcess(process, _startup(reader, start_timeout), reader)
    except BaseException:
        process.kill()
        process.wait()
        raise


@contextmanager
def emulator_process(
    *args: str,
    command: Sequence[str] | None = None,
    stderr_to_stdout: bool = True,
    stop_signal: int = signal.SIGINT,
    stop_timeout: float = STOP_WAIT_SECONDS,
) -> Iterator[EmulatorProcess]:
    """Run the CLI for the ``with`` block, then stop it with one ``stop_signal``, killing it after
    ``stop_timeout``.

    The process is reaped whatever happens in the block. A stop that needed the kill raises
    :class:`EmulatorProcessError`, unless the block is already raising.
    """
    emu = start_process(args, command=command, stderr_to_stdout=stderr_to_stdout)
    try:
        yield emu
    except BaseException:
        # Killed and reaped if need be; the block's own error is the one to see.
        with suppress(EmulatorProcessError):
            stop_process(emu.process, stop_signal, stop_timeout)
        raise
    stop_process(emu.process, stop_signal, stop_timeout)
