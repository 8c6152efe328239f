"""One signal stops the emulator, in bounded time, whenever it is sent (issue 16, defect 17).

The CLI printed its start-up line before any handler of its own was installed; uvicorn's came later.
A signal sent as soon as the line appeared met the inherited disposition: a KeyboardInterrupt traceback,
an abrupt SIGTERM death, or, where SIGINT is ignored (a background job of a non-interactive shell, which
is how CI and many runners start tests), nothing: the first SIGINT was lost.
"""

from __future__ import annotations

import signal
import socket
import sys
import threading
import time
from typing import Any

import pytest
import requests

from airflow_provider_cdata.emulator import Emulator, generate_key_pair
from airflow_provider_cdata.emulator.process import start_process, stop_process
from airflow_provider_cdata.emulator.server import STOP_GRACE_SECONDS, STOP_TIMEOUT_SECONDS

CLI = (sys.executable, "-m", "airflow_provider_cdata.emulator")
# SIGINT ignored on the way in, as `cmd &` in a non-interactive shell (or nohup-like runners) leave it.
SIGINT_IGNORED = ("sh", "-c", 'trap "" INT; exec "$0" "$@"', *CLI)
# Generous for a loaded machine; the emulator's own bound is STOP_TIMEOUT_SECONDS.
STOP_WITHIN = 10.0


@pytest.mark.parametrize(
    ("sig", "command", "times"),
    [
        pytest.param(signal.SIGINT, SIGINT_IGNORED, 5, id="SIGINT, inherited as ignored"),
        pytest.param(signal.SIGINT, CLI, 2, id="SIGINT"),
        pytest.param(signal.SIGTERM, CLI, 2, id="SIGTERM"),
    ],
)
def test_one_signal_right_after_the_start_up_line_stops_the_cli(
    sig: signal.Signals, command: tuple[str, ...], times: int
) -> None:
    for attempt in range(times):
        emu = start_process(["--port", "0", "--demo"], command=command)
        started = time.monotonic()
        returncode = stop_process(emu.process, sig, timeout=STOP_WITHIN)  # kills and raises if it hangs
        took = time.monotonic() - started
        assert returncode == 0, f"attempt {attempt}: exit {returncode} after {sig.name}:\n{emu.output}"
        assert "Traceback" not in emu.output, emu.output
        assert took < STOP_WITHIN


def _slow_list(api_url: str, outcome: dict[str, Any]) -> None:
    """A List Connections call that the latency fault holds for 60 s; records how it ended."""
    started = time.monotonic()
    try:
        answer = requests.get(f"{api_url}/poweredby/connection/list", timeout=60)
        outcome["result"] = answer.status_code
    except requests.RequestException as exc:
        outcome["result"] = type(exc).__name__
    outcome["seconds"] = time.monotonic() - started


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_one_signal_stops_the_cli_while_clients_hold_connections(sig: signal.Signals) -> None:
    emu = start_process(["--port", "0", "--fault", "latency:route=list,seconds=60"], command=SIGINT_IGNORED)
    try:
        keep_alive = requests.Session()
        assert keep_alive.get(f"{emu.root_url}/_emulator/health", timeout=10).ok  # an idle keep-alive
        outcome: dict[str, Any] = {}
        slow = threading.Thread(target=_slow_list, args=(emu.api_url, outcome))
        slow.start()
        deadline = time.monotonic() + 10
        while "list" not in requests.get(f"{emu.root_url}/_emulator/counters", timeout=10).text:
            assert time.monotonic() < deadline, "the slow call never reached the emulator"
            time.sleep(0.05)
        started = time.monotonic()
        returncode = stop_process(emu.process, sig, timeout=STOP_WITHIN)
        took = time.monotonic() - started
        slow.join(timeout=10)
        assert returncode == 0, emu.output
        assert took < STOP_WITHIN
        assert not slow.is_alive(), "the call in flight still waits on a stopped emulator"
        assert outcome["seconds"] < STOP_WITHIN + 5, outcome
        with pytest.raises(requests.ConnectionError):
            keep_alive.get(f"{emu.root_url}/_emulator/health", timeout=5)
    finally:
        stop_process(emu.process, signal.SIGKILL)


def test_stop_in_process_closes_every_connection_within_the_bound() -> None:
    emu = Emulator(log_limit=None).start()
    try:
        parent = emu.register_parent(generate_key_pair().public_pem)
        account = emu.add_account(parent)["id"]
        for number in range(4000):  # a state far larger than loopback's socket buffers (~8 MB)
            emu.add_connection(account, name=f"connection {number} " + "x" * 2000)
        idle = socket.create_connection(("127.0.0.1", emu.port))
        idle.sendall(b"GET /_emulator/health HTTP/1.1\r\nHost: x\r\n\r\n")
        assert b"200 OK" in idle.recv(65536)
        # A client that asks for the whole state and never reads its answer.
        stalled = socket.create_connection(("127.0.0.1", emu.port))
        stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stalled.sendall(b"GET /_emulator/state HTTP/1.1\r\nHost: x\r\n\r\n")
        time.sleep(0.5)
        started = time.monotonic()
    finally:
        emu.stop()
    took = time.monotonic() - started
    assert took < STOP_TIMEOUT_SECONDS
    for client in (idle, stalled):
        client.settimeout(5)
        assert _read_until_closed(client) < STOP_GRACE_SECONDS + 5, "the emulator left a connection open"
        client.close()


def _read_until_closed(client: socket.socket) -> float:
    """Read until the server closes (EOF or reset); seconds it took. Raises on a timeout."""
    started = time.monotonic()
    try:
        while client.recv(65536):
            pass
    except ConnectionResetError:
        pass
    return time.monotonic() - started
