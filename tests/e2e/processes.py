"""Start processes so that every one of them, and everything they fork, can be found and stopped by PID.

Each process starts in a session of its own and carries ``CDATA_E2E_TREE=<uuid>`` in its environment,
which its children inherit. ``stop()`` sends SIGTERM to each process group, waits, then finds every
survivor in /proc (same session or group, a descendant, or the marker in its environment; see
``tree_pids``) and sends it SIGKILL by PID. It raises if anything is still alive after that: a leak
fails the test run instead of slowing down the next one.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

MARKER_VARIABLE = "CDATA_E2E_TREE"
# util-linux's setpriv makes the child get SIGTERM if the pytest thread that started it dies (pytest killed
# by a CI timeout, say), so not even a SIGKILLed test run leaves an Airflow behind. Debian always has it.
SETPRIV = shutil.which("setpriv")


class LeftBehindError(RuntimeError):
    """Processes of a tree were still alive after SIGTERM and SIGKILL."""


@dataclass
class Service:
    """One long-running process, its output going to ``log_path``."""

    name: str
    process: subprocess.Popen[bytes]
    log_path: Path
    log_file: IO[bytes]

    @property
    def pid(self) -> int:
        return self.process.pid

    def running(self) -> bool:
        return self.process.poll() is None

    def log_tail(self, lines: int = 40) -> str:
        self.log_file.flush()
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])


@dataclass(frozen=True)
class ProcStat:
    pid: int
    state: str
    ppid: int
    pgid: int
    sid: int


def _stat(pid: int) -> ProcStat | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:  # gone meanwhile
        return None
    # The fields follow the command name, which is in parentheses and may itself hold spaces or ")".
    state, ppid, pgid, sid = stat.rsplit(")", 1)[1].split()[:4]
    return ProcStat(pid, state, int(ppid), int(pgid), int(sid))


def _environ_has(pid: int, entry: bytes) -> bool:
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:  # gone, or a kernel thread
        return False
    return entry in environ.split(b"\0")


def _all_stats() -> list[ProcStat]:
    stats = (_stat(int(name)) for name in os.listdir("/proc") if name.isdigit())
    return [stat for stat in stats if stat is not None]


def _with_descendants(stats: list[ProcStat], members: set[int]) -> set[int]:
    """``members`` and, by parent PID, all their descendants; then only the live ones (no zombies)."""
    found = set(members)
    while children := {s.pid for s in stats if s.ppid in found and s.pid not in found}:
        found |= children
    return found & {s.pid for s in stats if s.state not in {"Z", "X"}}


def tree_pids(marker: str, roots: Iterable[int]) -> list[int]:
    """Live processes of a tree: in a root's session or group, marked, or a descendant of one of those.

    No single test is enough. Processes that retitle themselves with setproctitle (the api-server, the
    LocalExecutor workers) overwrite the memory /proc/PID/environ shows, so the marker is lost for them;
    a process that calls setsid() leaves its root's session; an orphan is re-parented to init.
    """
    entry = f"{MARKER_VARIABLE}={marker}".encode()
    roots = set(roots)
    stats = _all_stats()
    members = {s.pid for s in stats if roots & {s.pid, s.pgid, s.sid} or _environ_has(s.pid, entry)}
    return sorted(_with_descendants(stats, members) - {os.getpid()})


def command_lines(pids: Iterable[int]) -> dict[int, str]:
    """The command line of each live process, as ``ps`` shows it (setproctitle's title, if it set one)."""
    found: dict[int, str] = {}
    for pid in pids:
        with contextlib.suppress(OSError):
            command = Path(f"/proc/{pid}/cmdline").read_bytes()
            found[pid] = command.replace(b"\0", b" ").decode(errors="replace").strip()
    return found


def descendants(root: int | None = None) -> dict[int, str]:
    """Live descendants of ``root`` (default: this process) by parent PID, with their command lines."""
    root = os.getpid() if root is None else root
    return command_lines(sorted(_with_descendants(_all_stats(), {root}) - {root}))


class ProcessTree:
    """Processes started with one marker; ``stop()`` ends all of them and everything they started."""

    def __init__(self, log_dir: Path, env: Mapping[str, str], cwd: Path | None = None) -> None:
        self.marker = uuid.uuid4().hex
        self.env = {**env, MARKER_VARIABLE: self.marker}
        self.log_dir = log_dir
        self.cwd = cwd
        self.services: dict[str, Service] = {}
        log_dir.mkdir(parents=True, exist_ok=True)

    def _argv(self, argv: Sequence[str]) -> list[str]:
        if SETPRIV is None:
            return list(argv)
        return [SETPRIV, "--pdeathsig", "TERM", "--", *argv]

    def spawn(self, name: str, argv: Sequence[str]) -> Service:
        """Start a long-running process in its own session (so its group can be signalled as one)."""
        log_path = self.log_dir / f"{name}.log"
        log_file = log_path.open("ab")
        process = subprocess.Popen(
            self._argv(argv),
            env=self.env,
            cwd=self.cwd,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        service = Service(name, process, log_path, log_file)
        self.services[name] = service
        return service

    def run(self, name: str, argv: Sequence[str], timeout: float) -> None:
        """Run a command to completion (``airflow db migrate``); raise with its output if it fails."""
        service = self.spawn(name, argv)
        try:
            code = service.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"{name} took over {timeout:.0f} s:\n{service.log_tail()}") from None
        if code != 0:
            raise RuntimeError(f"{name} exited with {code}:\n{service.log_tail()}")

    def alive(self) -> list[int]:
        return tree_pids(self.marker, (service.pid for service in self.services.values()))

    def stop(self, grace: float = 10.0) -> None:
        """SIGTERM every process group, wait up to ``grace`` s, then SIGKILL every marked survivor by PID."""
        for service in self.services.values():
            if service.running():
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(service.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while self.alive() and time.monotonic() < deadline:
            time.sleep(0.1)
        for pid in self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        for service in self.services.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                service.process.wait(timeout=5)  # reap our direct children, so none stays a zombie
            service.log_file.close()
        deadline = time.monotonic() + 5
        while (left := self.alive()) and time.monotonic() < deadline:
            time.sleep(0.05)
        if left:
            raise LeftBehindError(f"processes still alive after SIGKILL: {left}")


def _socket_inodes(pid: int) -> set[str]:
    inodes: set[str] = set()
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return inodes
    for fd in fds:
        with contextlib.suppress(OSError):
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    return inodes


def _address(hex_address: str) -> str:
    """/proc/net/tcp{,6} addresses: little-endian 32-bit words of hex, then :port."""
    ip_hex, port_hex = hex_address.split(":")
    words = [bytes.fromhex(ip_hex[i : i + 8])[::-1] for i in range(0, len(ip_hex), 8)]
    family = socket.AF_INET if len(words) == 1 else socket.AF_INET6
    return f"{socket.inet_ntop(family, b''.join(words))}:{int(port_hex, 16)}"


def listening_addresses(pids: Sequence[int]) -> dict[str, list[int]]:
    """Every TCP address these processes listen on (``"127.0.0.1:8080"``), with the PIDs listening."""
    owner: dict[str, list[int]] = {}
    for pid in pids:
        for inode in _socket_inodes(pid):
            owner.setdefault(inode, []).append(pid)
    listening: dict[str, list[int]] = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in owner:  # 0A: TCP_LISTEN
                listening.setdefault(_address(fields[1]), []).extend(owner[fields[9]])
    return listening
