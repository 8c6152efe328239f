"""The small hostile CData servers of the reliability tests: raw sockets on 127.0.0.1, so nothing is
normalised for us, and the ``cdata_default`` connection that points the hook at one.

A server subclasses :class:`LoopbackServer`, says how one accepted connection is served (``serve``) and
calls ``listen()`` once; ``stop()`` ends the accept loop. A fixture hands its servers to
:class:`Serving`, which points ``cdata_default`` at each and stops them all. Fast retries come from the
``fast_retries`` fixture (tests/conftest.py), not from here.
"""

from __future__ import annotations

import json
import socket
import threading
from typing import Any, TypeVar

import pytest

from airflow_provider_cdata.emulator import KeyPair

PARENT = "9b1deb4d-3b7d-4bad-9bdd-2b0d7b3dcb6d"
ACCOUNT = "1b9d6bcd-bbfd-4b2d-9b5d-ab8dfbbd4bed"


class LoopbackServer:
    """A TCP server on a free loopback port; each accepted connection is served on its own thread."""

    sock: socket.socket
    thread: threading.Thread
    stopping: threading.Event

    def listen(self) -> None:
        self.stopping = threading.Event()
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.1)
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}/api"

    def accepted(self, conn: socket.socket) -> None:
        """Called on the accept loop's thread for each connection, before ``serve`` starts on its own."""

    def serve(self, conn: socket.socket) -> None:
        raise NotImplementedError

    def _accept(self) -> None:
        while not self.stopping.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.accepted(conn)
            threading.Thread(target=self.serve, args=(conn,), daemon=True).start()

    def stop(self) -> None:
        self.stopping.set()
        self.sock.close()
        self.thread.join(timeout=5)


def cdata_default(url: str, keys: KeyPair, **extra: Any) -> dict[str, Any]:
    """The Airflow connection (JSON form) of a parent signing with ``keys`` and its child, at ``url``."""
    return {
        "conn_type": "cdata",
        "host": url,
        "login": PARENT,
        "password": keys.private_pem,
        "extra": {"account_id": ACCOUNT, **extra},
    }


def point_cdata_default(monkeypatch: pytest.MonkeyPatch, url: str, keys: KeyPair, **extra: Any) -> None:
    """Set ``AIRFLOW_CONN_CDATA_DEFAULT`` to :func:`cdata_default` for this test."""
    monkeypatch.setenv("AIRFLOW_CONN_CDATA_DEFAULT", json.dumps(cdata_default(url, keys, **extra)))


Server = TypeVar("Server", bound=LoopbackServer)


class Serving:
    """``serving(server, **extra)`` points ``cdata_default`` at ``server`` (with this one's extras, then
    ``extra``) and returns it; leaving the ``with`` block stops every server it was given."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, keys: KeyPair, **extra: Any) -> None:
        self.monkeypatch, self.keys, self.extra = monkeypatch, keys, extra
        self.servers: list[LoopbackServer] = []

    def __call__(self, server: Server, **extra: Any) -> Server:
        self.servers.append(server)
        point_cdata_default(self.monkeypatch, server.url, self.keys, **{**self.extra, **extra})
        return server

    def __enter__(self) -> Serving:
        return self

    def __exit__(self, *exc: object) -> None:
        for server in self.servers:
            server.stop()
