"""The CData emulator in its own process, and the admin calls the benchmarks seed and read it with.

A separate process, not a thread: a client and a server sharing one GIL slow each other down (a keep-alive
List Connections call costs ~0.6 ms in the server alone but ~1.7 ms with both in one process), and
every figure would then measure the sharing.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
import requests

from airflow_provider_cdata.auth import load_private_key
from airflow_provider_cdata.emulator.process import EmulatorProcessError, read_startup, stop_process


@dataclass
class EmulatorProcess:
    """``python -m airflow_provider_cdata.emulator --demo --port 0``: a parent key pair, one child account."""

    process: subprocess.Popen[str]
    root_url: str  # http://127.0.0.1:PORT
    connection: dict[str, Any]  # the Airflow connection (JSON form) for the demo parent and child
    _admin_session: requests.Session = field(default_factory=requests.Session)
    _admin_connections_at_reset: int = 0

    @classmethod
    def start(cls, timeout: float = 30.0) -> EmulatorProcess:
        log = tempfile.NamedTemporaryFile(prefix="cdata-bench-emulator-", suffix=".log", delete=False)  # noqa: SIM115
        process = subprocess.Popen(
            [sys.executable, "-m", "airflow_provider_cdata.emulator", "--demo", "--port", "0"],
            stdout=subprocess.PIPE,
            stderr=log,  # its log goes to a file, out of the table the benchmarks print
            text=True,
        )
        assert process.stdout is not None
        try:
            startup = read_startup(process.stdout, timeout)
            connection = startup.airflow_connection()
        except EmulatorProcessError as error:
            process.kill()
            process.wait()
            raise RuntimeError(f"the emulator did not start; see {log.name}:\n{error}") from None
        return cls(process=process, root_url=startup.root_url, connection=connection)

    def stop(self) -> None:
        self._admin_session.close()
        # Killed and reaped if SIGTERM was not enough; the figures are printed by then either way.
        with suppress(EmulatorProcessError):
            stop_process(self.process, signal.SIGTERM, timeout=10)

    def __enter__(self) -> EmulatorProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- identities ----------------------------------------------------------------------------------
    @property
    def api_url(self) -> str:
        return f"{self.root_url}/api"

    @property
    def parent_id(self) -> str:
        parent: str = self.connection["login"]
        return parent

    @property
    def account_id(self) -> str:
        account: str = self.connection["extra"]["account_id"]
        return account

    def use_as_cdata_default(self) -> None:
        """Point Airflow's ``cdata_default`` at this emulator (for hooks, operators and triggers)."""
        os.environ["AIRFLOW_CONN_CDATA_DEFAULT"] = json.dumps(self.connection)

    def token(self, account_id: str | None = None, lifetime: int = 3600) -> str:
        """A token signed with the demo parent's key; ``account_id`` None: a parent-level token."""
        now = int(time.time())
        claims: dict[str, Any] = {
            "tokenType": "powered-by",
            "iat": now,
            "exp": now + lifetime,
            "iss": self.parent_id,
        }
        if account_id is not None:
            claims["sub"] = account_id
        key = load_private_key(self.connection["password"]).key
        return jwt.encode(claims, key, algorithm="RS256", headers={"typ": "JWT"})

    # -- seeding -------------------------------------------------------------------------------------
    def add_accounts(self, count: int, prefix: str = "bench") -> list[str]:
        """Create ``count`` child accounts through the API (a parent-level token), return their ids."""
        headers = {"Authorization": f"Bearer {self.token()}"}
        ids = []
        with requests.Session() as session:
            for index in range(count):
                answer = session.post(
                    f"{self.api_url}/poweredby/account/create",
                    json={"externalId": f"{prefix}-{index}-{time.monotonic_ns()}"},
                    headers=headers,
                    timeout=10,
                )
                answer.raise_for_status()
                ids.append(answer.json()["accountId"])
        return ids

    def add_connections(self, count: int, account_id: str | None = None) -> list[str]:
        ids = []
        with requests.Session() as session:
            for index in range(count):
                answer = session.post(
                    f"{self.root_url}/_emulator/connections",
                    json={"accountId": account_id or self.account_id, "name": f"Bench {index}"},
                    timeout=10,
                )
                answer.raise_for_status()
                ids.append(answer.json()["id"])
        return ids

    # -- faults and counters -------------------------------------------------------------------------
    def inject(self, kind: str, **options: Any) -> None:
        self._admin("post", "faults", json={"kind": kind, **options})

    def clear_faults(self) -> None:
        self._admin("delete", "faults")

    def reset_counters(self) -> None:
        self._admin("post", "reset")
        self._admin_connections_at_reset = connections_opened(self._admin_session)

    def counters(self) -> Counters:
        """The emulator's counters, less the TCP connections these admin calls opened since the reset."""
        snapshot = self._admin("get", "counters")
        admin = connections_opened(self._admin_session) - self._admin_connections_at_reset
        snapshot["connections_accepted"] -= admin
        return Counters(snapshot)

    def _admin(self, method: str, path: str, **kwargs: Any) -> Any:
        answer = self._admin_session.request(
            method, f"{self.root_url}/_emulator/{path}", timeout=30, **kwargs
        )
        answer.raise_for_status()
        return answer.json()


@dataclass
class Counters:
    """A snapshot of ``/_emulator/counters``."""

    snapshot: dict[str, Any]

    def count(self, route: str | None = None, status: int | None = None) -> int:
        return sum(
            row["count"]
            for row in self.snapshot["requests"]
            if (route is None or row["route"] == route) and (status is None or row["status"] == status)
        )

    @property
    def connections_accepted(self) -> int:
        accepted: int = self.snapshot["connections_accepted"]
        return accepted

    def max_in_flight(self, route: str) -> int:
        peak: int = self.snapshot["max_in_flight"].get(route, 0)
        return peak


def connections_opened(session: requests.Session) -> int:
    """New TCP connections urllib3 has made for this session so far, over all of its pools."""
    total = 0
    for adapter in {id(a): a for a in session.adapters.values()}.values():  # one adapter may serve both
        pools = adapter.poolmanager.pools  # type: ignore[attr-defined]
        total += sum(pools[key].num_connections for key in pools.keys())  # noqa: SIM118 - urllib3's container has no __iter__
    return total


def log_path() -> str:
    """Where the benchmarks' Airflow and provider log lines go (stdout stays for the table)."""
    return str(Path(tempfile.gettempdir()) / "cdata-benchmarks.log")


def fresh_airflow_home() -> Path:
    """A throwaway AIRFLOW_HOME, set before Airflow is imported, so a benchmark never touches ~/airflow."""
    home = Path(tempfile.mkdtemp(prefix="cdata-bench-airflow-"))
    os.environ.setdefault("AIRFLOW_HOME", str(home))
    os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    return Path(os.environ["AIRFLOW_HOME"])
