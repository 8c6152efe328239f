"""Fixtures shared by every suite: one RSA key pair per session, a fresh emulator per test."""

from __future__ import annotations

import atexit
import functools
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jwt
import pytest
import requests
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from airflow_provider_cdata.emulator import Emulator, KeyPair, complete_flow, generate_key_pair

if TYPE_CHECKING:  # the hook imports Airflow: not before AIRFLOW_HOME is set below
    from airflow_provider_cdata.hooks import CDataHook, RetryPolicy

# Airflow reads its configuration on first import: give the test session its own AIRFLOW_HOME (and
# SQLite database) before any test module imports Airflow, so tests never touch ~/airflow. DAGs run
# with dag.test() come from two bundles: tests/dags and the example DAGs users copy.
REPO = Path(__file__).resolve().parent.parent
AIRFLOW_HOME = tempfile.mkdtemp(prefix="cdata-airflow-home-")
os.environ["AIRFLOW_HOME"] = AIRFLOW_HOME
# Gone when the process that made it ends: each test session (and each process that imports this module)
# made one and left it behind, hundreds a day in /tmp.
atexit.register(shutil.rmtree, AIRFLOW_HOME, ignore_errors=True)
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(REPO / "tests" / "dags")
os.environ["AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST"] = json.dumps(
    [
        {
            "name": name,
            "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
            "kwargs": {"path": path},
        }
        for name, path in (
            ("dags-folder", str(REPO / "tests" / "dags")),
            ("examples", str(REPO / "dags_examples")),
        )
    ]
)


@functools.lru_cache(maxsize=8)
def _private_key(pem: str) -> Any:
    """Loading a PEM RSA key costs ~50 ms (cryptography checks the key); do it once per key."""
    return load_pem_private_key(pem.encode(), password=None)


@pytest.fixture(scope="session")
def keys() -> KeyPair:
    return generate_key_pair()


@pytest.fixture(scope="session")
def other_keys() -> KeyPair:
    return generate_key_pair()


@dataclass
class CData:
    """An emulator with one registered parent and one child account, and a way to mint tokens."""

    emulator: Emulator
    keys: KeyPair
    parent_id: str
    account_id: str

    @property
    def base_url(self) -> str:
        return self.emulator.base_url

    def token(self, key: Any = None, algorithm: str = "RS256", **claims: Any) -> str:
        now = int(time.time())
        payload: dict[str, Any] = {
            "tokenType": "powered-by",
            "iat": now,
            "exp": now + 300,
            "iss": self.parent_id,
            "sub": self.account_id,
        }
        payload.update(claims)
        payload = {k: v for k, v in payload.items() if v is not None}
        return jwt.encode(payload, key or _private_key(self.keys.private_pem), algorithm=algorithm)

    def headers(self, **claims: Any) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(**claims)}"}

    def connect_url(self, redirect_url: str = "https://app.example.com/done", **body: Any) -> str:
        """Create Connection over HTTP, as any client would: the connect URL the emulator returns."""
        payload = {"dataSource": "Salesforce", "redirectURL": redirect_url, **body}
        answer = requests.post(
            f"{self.base_url}/poweredby/connection/create", json=payload, headers=self.headers(), timeout=10
        )
        answer.raise_for_status()
        url: str = answer.json()["redirectURL"]
        return url

    def reauthenticate(self, connection_id: str, account_id: str | None = None) -> dict[str, Any]:
        """The customer opens the connection's Edit link (asked for over HTTP) and saves it again, as
        after a password change: CData stamps a new ``lastModified``. Returns the connection then."""
        answer = requests.post(
            f"{self.base_url}/poweredby/connection/edit/{connection_id}",
            json={"redirectURL": "https://app.example.com/done"},
            headers=self.headers(sub=account_id or self.account_id),
            timeout=10,
        )
        answer.raise_for_status()
        complete_flow(answer.json()["redirectURL"])
        connection = self.emulator.connection(connection_id)
        assert connection is not None
        return connection


# -- parity with CData's OpenAPI description, over the whole suite's traffic -----------------------
# Every in-process emulator is checked as it stops (tests/parity/check.py): each request the hook sent
# and each answer the emulator gave, against the models of the description. A test whose emulator
# drifted fails; an emulator that outlives its test (module scope) fails the session.
PARITY_PROBLEMS: list[str] = []
_stop_emulator = Emulator.stop


def _stop_and_check(self: Emulator) -> None:
    if self._server is not None:  # the first stop only: a second one has nothing new
        from tests.parity.check import problems

        test = os.environ.get("PYTEST_CURRENT_TEST", "(outside a test)").split(" ")[0]
        PARITY_PROBLEMS.extend(f"{test}: {problem}" for problem in problems(self.counters.records()))
    _stop_emulator(self)


Emulator.stop = _stop_and_check  # type: ignore[method-assign]


@pytest.fixture(autouse=True)
def _openapi_parity() -> Iterator[None]:
    """Fail the test whose emulator saw a request or gave an answer the description does not allow."""
    before = len(PARITY_PROBLEMS)
    yield
    if found := PARITY_PROBLEMS[before:]:
        del PARITY_PROBLEMS[before:]
        pytest.fail("OpenAPI parity: " + "\n".join(found[:20]), pytrace=False)


@pytest.fixture(scope="session", autouse=True)
def _openapi_parity_of_the_session() -> Iterator[None]:
    yield
    assert not PARITY_PROBLEMS, "OpenAPI parity: " + "\n".join(PARITY_PROBLEMS[:20])


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    with Emulator() as emu:
        yield emu


@pytest.fixture
def cdata(emulator: Emulator, keys: KeyPair) -> CData:
    parent_id = emulator.register_parent(keys.public_pem)
    account_id = emulator.add_account(parent_id, external_id="customer-1")["id"]
    return CData(emulator=emulator, keys=keys, parent_id=parent_id, account_id=account_id)


# -- an Airflow connection of type cdata for the `cdata` emulator (hook, operator and sensor tests) ---
def cdata_connection(cdata: CData, **extra: Any) -> dict[str, Any]:
    """The Airflow connection (JSON form) for the emulator's parent and child; ``extra`` adds extras."""
    return {
        "conn_type": "cdata",
        "host": cdata.base_url,
        "login": cdata.parent_id,
        "password": cdata.keys.private_pem,
        "extra": {"account_id": cdata.account_id, **extra},
    }


@pytest.fixture
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> RetryPolicy:
    """Every hook's retries back off in milliseconds instead of seconds, for this test.

    Only the exponential backoff is shortened (5 ms doubling up to 20 ms): what is retried, how often,
    and Retry-After (honoured up to its cap) stay the hook's own policy.
    """
    from airflow_provider_cdata.hooks import CDataHook, RetryPolicy

    policy = RetryPolicy(backoff_base=0.005, backoff_max=0.02)
    monkeypatch.setattr(CDataHook, "retry_policy", policy)
    return policy


@pytest.fixture
def cdata_hook_env(
    cdata: CData, monkeypatch: pytest.MonkeyPatch, fast_retries: RetryPolicy
) -> Iterator[CDataHook]:
    """Set ``AIRFLOW_CONN_CDATA_DEFAULT`` for the ``cdata`` emulator and return a ``CDataHook`` on it."""
    from airflow_provider_cdata.hooks import CDataHook

    monkeypatch.setenv("AIRFLOW_CONN_CDATA_DEFAULT", json.dumps(cdata_connection(cdata)))
    hook = CDataHook()
    yield hook
    hook.close()


@pytest.fixture
def airflow_conn(cdata: CData, monkeypatch: pytest.MonkeyPatch, fast_retries: RetryPolicy) -> CData:
    """``cdata_default`` points at the ``cdata`` emulator (quick retries), for DAG runs and triggers."""
    connection = cdata_connection(cdata, max_retries=2, timeout=5)
    monkeypatch.setenv("AIRFLOW_CONN_CDATA_DEFAULT", json.dumps(connection))
    return cdata


@pytest.fixture(autouse=True)
def _reset_secrets_masker() -> Iterator[None]:
    """Start every test with an empty Airflow secrets masker.

    The hook masks every token it mints and every connect-URL token, and Airflow's masker recompiles one
    regex of *all* secrets it has seen on each new one (measured: ~150 ms a secret at 100 secrets,
    ~2 s at 400), so without this the suite slows down quadratically.
    """
    yield
    reset_secrets_masker()


def reset_secrets_masker() -> None:
    """Empty Airflow's secrets masker, as a new task process starts (and the hook's count with it)."""
    masker = sys.modules.get("airflow.sdk._shared.secrets_masker")
    if masker is not None:
        masker._secrets_masker().reset_masker()
    hooks = sys.modules.get("airflow_provider_cdata.hooks")
    if hooks is not None:  # the hook's count of tokens it gave the masker starts again with it
        hooks.token_mask_budget.reset()
