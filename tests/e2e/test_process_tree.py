"""The harness's process handling, on small stand-ins: what it must do for Airflow's real processes."""

from __future__ import annotations

import os
import socket
import sys
import time
from pathlib import Path

import pytest

from tests.e2e.processes import ProcessTree, listening_addresses

pytestmark = pytest.mark.e2e

# A parent that ignores SIGTERM and starts a child in a session of its own (so the parent's process group
# does not reach it), which ignores SIGTERM too; both print their PIDs, then sleep.
STUBBORN_TREE = """
import os, signal, subprocess, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
child = subprocess.Popen([sys.executable, "-c",
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)"],
    start_new_session=True)
print(os.getpid(), child.pid, flush=True)
time.sleep(60)
"""


def running(pid: int) -> bool:
    """Alive and not a zombie (an orphan's zombie waits for init to reap it)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in {"Z", "X"}


def wait_for_pids(log: Path) -> list[int]:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        words = log.read_text().split()
        if len(words) == 2:
            return [int(word) for word in words]
        time.sleep(0.02)
    raise AssertionError(f"the stand-in did not start: {log.read_text()!r}")


def test_stop_kills_processes_that_ignore_sigterm_and_left_the_session(tmp_path: Path) -> None:
    tree = ProcessTree(tmp_path, env={"PATH": "/usr/bin:/bin"})
    tree.spawn("stubborn", [sys.executable, "-c", STUBBORN_TREE])
    parent, child = wait_for_pids(tmp_path / "stubborn.log")
    assert {parent, child} <= set(tree.alive()), "the child in its own session is still found"

    began = time.monotonic()
    tree.stop(grace=0.5)

    assert tree.alive() == []
    assert not running(parent)
    assert not running(child)
    assert time.monotonic() - began < 5, "SIGKILL follows soon after the grace period"


def test_listening_addresses_name_the_address_each_process_is_bound_to() -> None:
    with socket.socket() as ipv4, socket.socket(socket.AF_INET6) as ipv6, socket.socket() as connected:
        ipv4.bind(("127.0.0.2", 0))
        ipv6.bind(("::1", 0))
        ipv4.listen()
        ipv6.listen()
        connected.connect(ipv4.getsockname())  # not listening: must not be reported

        found = listening_addresses([os.getpid()])
        expected = {
            f"127.0.0.2:{ipv4.getsockname()[1]}": [os.getpid()],
            f"::1:{ipv6.getsockname()[1]}": [os.getpid()],
        }
        client_port = connected.getsockname()[1]
    # Other fixtures of this pytest process may listen too; these two must be there, the client not.
    assert {address: found.get(address) for address in expected} == expected
    assert not [address for address in found if address.endswith(f":{client_port}")]
