"""Run the emulator: in a background thread for tests and benchmarks, or in the foreground for the CLI.

>>> with Emulator() as emu:                              # ephemeral port on 127.0.0.1
...     parent = emu.register_parent(public_pem)
...     account = emu.add_account(parent)["id"]
...     emu.base_url                                     # 'http://127.0.0.1:40123/api'
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from types import FrameType
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from airflow_provider_cdata.emulator.app import create_app
from airflow_provider_cdata.emulator.context import EmulatorContext
from airflow_provider_cdata.emulator.faults import FaultInjector, FaultRule
from airflow_provider_cdata.emulator.keys import KeyPair, generate_key_pair
from airflow_provider_cdata.emulator.metrics import Counters, RequestRecord
from airflow_provider_cdata.emulator.state import Clock, Store
from airflow_provider_cdata.emulator.tokens import FlowTokens

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765
# A stop (one SIGINT or SIGTERM to the CLI, Emulator.stop() in-process) gives requests in flight this
# long to finish, then closes every connection still open ...
STOP_GRACE_SECONDS = 2.0
# ... and is over within this: the grace, uvicorn's 0.1 s tick and its closing steps, on a loaded machine.
STOP_TIMEOUT_SECONDS = 5.0
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _counting_protocol(ctx: EmulatorContext) -> type[asyncio.Protocol]:
    """uvicorn's own HTTP protocol, also counting TCP connections and remembering their transports."""

    class CountingProtocol(HttpToolsProtocol):
        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            ctx.counters.connection_opened()
            if self.client:
                ctx.transports[self.client] = transport

        def connection_lost(self, exc: Exception | None) -> None:
            ctx.counters.connection_closed()
            if self.client:
                ctx.transports.pop(self.client, None)
            super().connection_lost(exc)

    return CountingProtocol


class _Server(uvicorn.Server):
    """uvicorn's server; once its graceful shutdown is over, it resets the connections still open.

    uvicorn closes idle keep-alive connections and cancels requests still running after the grace, but
    a connection whose answer the client does not read stays open with its unsent bytes, in the event
    loop and then in the kernel (a plain close still delivers them): reset it (SO_LINGER 0), so the
    client learns at once and nothing outlives the stop.
    """

    def __init__(self, config: uvicorn.Config, ctx: EmulatorContext) -> None:
        super().__init__(config)
        self._ctx = ctx

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        try:
            await super().shutdown(sockets=sockets)
        finally:
            for transport in list(self._ctx.transports.values()):
                sock = transport.get_extra_info("socket")
                if sock is not None:
                    with contextlib.suppress(OSError):
                        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                transport.abort()


class _StopOnSignal:
    """The CLI's SIGINT/SIGTERM handler, installed before the start-up line is printed.

    uvicorn installs its own handlers only once its event loop runs, after imports and set-up that take
    a while on a loaded machine. A signal sent as soon as the start-up line appears arrived before them
    and met the inherited disposition: a KeyboardInterrupt traceback, or nothing at all where SIGINT is
    ignored (a background job of a non-interactive shell, as CI runs tests), so the first signal was lost.
    This handler remembers the stop and passes it on to the server once there is one; uvicorn's own
    handler takes over while it serves, and hands the signal back here when done.
    """

    def __init__(self) -> None:
        self.requested = False
        self._server: uvicorn.Server | None = None

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        self.requested = True
        if self._server is not None:
            self._server.should_exit = True

    def attach(self, server: uvicorn.Server) -> None:
        self._server = server
        if self.requested:
            server.should_exit = True


class Emulator:
    """One emulated Powered by CData service: state, faults, counters and its HTTP server."""

    def __init__(
        self,
        host: str = DEFAULT_HOST,
        port: int = 0,
        *,
        state_path: str | os.PathLike[str] | None = None,
        flow_token_ttl: float = 180.0,
        seed: int | None = 0,
        public_url: str | None = None,
        log_limit: int | None = None,
    ) -> None:
        self.host = host
        self.port = port
        clock = Clock()
        store = Store(clock, state_path)
        secret = store.extras.get("flow_secret")
        flow_tokens = FlowTokens(secret, ttl_seconds=flow_token_ttl)
        if secret is None:
            store.set_extra("flow_secret", flow_tokens.secret)
        self.ctx = EmulatorContext(
            store=store,
            clock=clock,
            flow_tokens=flow_tokens,
            faults=FaultInjector(seed),
            counters=Counters(log_limit=log_limit),
        )
        self.app = create_app(self.ctx, public_url=public_url)
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    # -- running ---------------------------------------------------------------------------------
    def _config(self) -> uvicorn.Config:
        return uvicorn.Config(
            self.app,
            host=self.host,
            port=self.port,
            http=_counting_protocol(self.ctx),
            lifespan="off",
            log_level="warning",
            access_log=False,
            timeout_keep_alive=60,
            timeout_graceful_shutdown=int(STOP_GRACE_SECONDS),
            backlog=4096,
        )

    def start(self, timeout: float = 10.0) -> Emulator:
        """Serve in a background thread; with ``port=0`` the OS picks a free port."""
        config = self._config()
        sock = config.bind_socket()
        self.port = sock.getsockname()[1]
        self._server = _Server(config, self.ctx)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, name="cdata-emulator", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the CData emulator did not start")
            time.sleep(0.005)
        return self

    def stop(self) -> None:
        """Stop serving: requests in flight get STOP_GRACE_SECONDS, then open connections are closed.

        Returns within STOP_TIMEOUT_SECONDS. A server thread still there then (a starved machine) is
        told to skip the rest of its shutdown; one still there after as long again raises RuntimeError.
        """
        server, thread = self._server, self._thread
        self._server = None
        self._thread = None
        if server is None or thread is None:
            return
        server.should_exit = True
        thread.join(timeout=STOP_TIMEOUT_SECONDS)
        if thread.is_alive():
            server.force_exit = True
            thread.join(timeout=STOP_TIMEOUT_SECONDS)
        if thread.is_alive():
            raise RuntimeError(f"the CData emulator did not stop within {2 * STOP_TIMEOUT_SECONDS:g} s")

    def serve_forever(self, ready: Callable[[Emulator], None] | None = None) -> None:
        """Serve in the foreground until SIGINT or SIGTERM (the CLI); ``ready`` runs once the port is bound.

        One signal stops it, at any moment from the call on (see :class:`_StopOnSignal`), as
        :meth:`stop` does; then it returns, and the signals' previous handlers are back.
        """
        stop = _StopOnSignal()
        previous = {sig: signal.signal(sig, stop) for sig in STOP_SIGNALS}
        try:
            config = self._config()
            sock = config.bind_socket()
            self.port = sock.getsockname()[1]
            # Listen now: a client that reads the printed URL queues in the backlog until uvicorn accepts.
            sock.listen(config.backlog)
            if ready is not None:
                ready(self)
            self._server = _Server(config, self.ctx)
            stop.attach(self._server)
            self._server.run(sockets=[sock])
        finally:
            self._server = None
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def root_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def base_url(self) -> str:
        """The API root, what an Airflow connection's host holds."""
        return f"{self.root_url}/api"

    # -- state -----------------------------------------------------------------------------------
    @property
    def store(self) -> Store:
        return self.ctx.store

    @property
    def clock(self) -> Clock:
        return self.ctx.clock

    def register_parent(self, public_key_pem: str, parent_id: str | None = None) -> str:
        return self.store.register_parent(public_key_pem, parent_id)

    def add_account(self, parent_id: str, account_id: str | None = None, **fields: Any) -> dict[str, Any]:
        return self.store.add_account(parent_id, account_id, **fields)

    def add_connection(
        self, account_id: str, data_source: str = "Salesforce", **fields: Any
    ) -> dict[str, Any]:
        return self.store.add_connection(account_id, data_source, **fields)

    def set_status(self, connection_id: str, status: str) -> dict[str, Any]:
        """Give a connection another status, e.g. ``Conditional`` (see :meth:`Store.set_status`)."""
        return self.store.set_status(connection_id, status)

    def connections(self, account_id: str | None = None) -> list[dict[str, Any]]:
        return self.store.list_connections(account_id)

    def connection(self, connection_id: str) -> dict[str, Any] | None:
        return self.store.get_connection(connection_id)

    # -- faults and counters ---------------------------------------------------------------------
    @property
    def counters(self) -> Counters:
        return self.ctx.counters

    def inject(self, kind: str, route: str | None = None, **options: Any) -> FaultRule:
        """Add a fault rule, e.g. ``emu.inject("status", status=503, times=2, route="list")``."""
        return self.ctx.faults.add(FaultRule(kind=kind, route=route, **options))

    def clear_faults(self) -> None:
        self.ctx.faults.clear()

    def reset_counters(self) -> None:
        self.ctx.counters.reset()

    def requests(self, route: str | None = None) -> list[RequestRecord]:
        return self.ctx.counters.records(route)

    # -- demo ------------------------------------------------------------------------------------
    def demo_credentials(
        self, parent_id: str | None = None, account_id: str | None = None
    ) -> DemoCredentials:
        """A parent key pair and a child account, made once and kept in the state file if there is one.

        ``parent_id`` and ``account_id`` fix the ids (docker-compose names them in its Airflow connection);
        a saved demo with other ids is replaced by a new one.
        """
        saved = self.store.extras.get("demo")
        if (
            saved
            and parent_id in (None, saved["parent_id"])
            and account_id in (None, saved["account_id"])
            and self.store.public_key(saved["parent_id"])
            and self.store.is_child(saved["parent_id"], saved["account_id"])
        ):
            return DemoCredentials(**saved)
        keys: KeyPair = generate_key_pair()
        parent_id = self.register_parent(keys.public_pem, parent_id)
        account = self.store.find_account(parent_id, account_id) if account_id else None
        if account is None:
            # An earlier demo account of this parent may hold the external id already.
            taken = self.store.find_account(parent_id, "demo-customer") is not None
            external_id = account_id if taken else "demo-customer"
            account = self.add_account(
                parent_id, account_id, external_id=external_id, account_name="Demo customer"
            )
        demo = DemoCredentials(
            parent_id=parent_id, account_id=account["id"], private_key_pem=keys.private_pem
        )
        self.store.set_extra("demo", demo.as_dict())
        return demo


@dataclass(frozen=True)
class DemoCredentials:
    parent_id: str
    account_id: str
    private_key_pem: str

    def as_dict(self) -> dict[str, str]:
        return asdict(self)

    def airflow_connection(self, api_url: str, private_key_path: str | None = None) -> dict[str, Any]:
        """The value of ``AIRFLOW_CONN_CDATA_DEFAULT`` (JSON form) for this parent and child.

        With ``private_key_path`` the connection names the key file instead of carrying the PEM.
        """
        connection: dict[str, Any] = {"conn_type": "cdata", "host": api_url, "login": self.parent_id}
        extra: dict[str, Any] = {"account_id": self.account_id}
        if private_key_path:
            extra["private_key_path"] = private_key_path
        else:
            connection["password"] = self.private_key_pem
        return {**connection, "extra": extra}
