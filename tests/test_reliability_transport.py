"""The hook's transport where the benchmarks pushed it: the proxy environment read once per session,
~/.netrc kept away from the bearer token, the async client's bounded pool (and its wait, which times
out before anything is sent), and the bounded registration of tokens with Airflow's secrets masker."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_cdata.exceptions import CDataAPIError
from airflow_provider_cdata.hooks import ASYNC_POOL_SIZE, MAX_MASKED_TOKENS, CDataHook
from tests.conftest import CData, cdata_connection
from tests.test_hook_calls import Runner, runner_fixture
from tests.test_reliability_hostile import RawServer, http, send
from tests.test_reliability_leaks import record_minted_tokens

run = runner_fixture()
PROXY_VARIABLES = ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")


@pytest.fixture
def proxy(monkeypatch: pytest.MonkeyPatch) -> Iterator[RawServer]:
    """A forward proxy on loopback that answers every request itself, recording the request line."""
    server = RawServer(send(http(200, b'{"connections": [{"id": "via-proxy"}]}')))
    for name in (*PROXY_VARIABLES, "NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", server.url.removesuffix("/api"))
    yield server
    server.stop()


def use(monkeypatch: pytest.MonkeyPatch, cdata: CData, **extra: object) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_CDATA_DEFAULT", json.dumps(cdata_connection(cdata, **extra)))


def test_the_proxy_environment_is_honoured(
    cdata: CData, monkeypatch: pytest.MonkeyPatch, proxy: RawServer, run: Runner
) -> None:
    use(monkeypatch, cdata)
    assert run(CDataHook(), "list_connections") == [{"id": "via-proxy"}]
    (request,) = proxy.requests
    assert request.startswith(f"GET {cdata.base_url}/poweredby/connection/list".encode()), request[:100]
    assert cdata.emulator.counters.count() == 0


def test_no_proxy_is_honoured(
    cdata: CData, monkeypatch: pytest.MonkeyPatch, proxy: RawServer, run: Runner
) -> None:
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    use(monkeypatch, cdata)
    assert run(CDataHook(), "list_connections") == []
    assert proxy.requests == []
    assert cdata.emulator.counters.count("list", 200) == 1


def test_a_netrc_entry_for_the_api_host_does_not_replace_the_bearer_token(
    cdata: CData, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, run: Runner
) -> None:
    netrc = tmp_path / "netrc"
    netrc.write_text("machine 127.0.0.1 login someone password their-password\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    use(monkeypatch, cdata, max_retries=0)
    assert run(CDataHook(), "list_connections") == []
    (record,) = cdata.emulator.requests("list")
    assert record.claims is not None, "the emulator verified a bearer JWT, not Basic credentials"


def test_async_hooks_on_one_loop_keep_at_most_the_pool_size_in_flight(
    cdata: CData, monkeypatch: pytest.MonkeyPatch
) -> None:
    use(monkeypatch, cdata)
    cdata.emulator.inject("latency", route="list", seconds=0.1)

    async def many_at_once() -> Any:
        hooks = [CDataHook() for _ in range(3 * ASYNC_POOL_SIZE)]
        try:
            return await asyncio.gather(*(hook.alist_connections() for hook in hooks))
        finally:
            for hook in hooks:
                await hook.aclose()

    assert asyncio.run(many_at_once()) == [[]] * (3 * ASYNC_POOL_SIZE)
    assert cdata.emulator.counters.max_in_flight["list"] == ASYNC_POOL_SIZE
    assert cdata.emulator.counters.connections_accepted == ASYNC_POOL_SIZE


@pytest.mark.usefixtures("fast_retries")
def test_waiting_for_a_pooled_connection_past_the_timeout_is_a_retried_timeout(
    cdata: CData, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # Each wave's calls take 1 s at the server. A slot is waited for at most the timeout, then the exchange
    # has the timeout too: the second wave waits 1 s for its slots and has 0.6 s to spare on its exchange
    # (a call cut off at its timeout would leave its request at the server, over the slots' count: on a
    # loaded machine 0.15 s of spare was not enough), and the third, waiting from the start for the second
    # to end (at ~2 s), waits past the timeout and is retried.
    use(monkeypatch, cdata, timeout=1.6, max_retries=5)
    cdata.emulator.inject("latency", route="list", seconds=1.0)

    async def three_waves() -> Any:
        hook = CDataHook()
        try:
            return await asyncio.gather(*(hook.alist_connections() for _ in range(3 * ASYNC_POOL_SIZE)))
        finally:
            await hook.aclose()

    with caplog.at_level(logging.WARNING, logger="airflow_provider_cdata.hooks"):
        assert asyncio.run(three_waves()) == [[]] * (3 * ASYNC_POOL_SIZE)
    waited = [r.getMessage() for r in caplog.records if "no free connection within 1.6 s" in r.getMessage()]
    assert waited, "the third wave waited past the timeout, and was retried"
    assert cdata.emulator.counters.max_in_flight["list"] <= ASYNC_POOL_SIZE


@pytest.mark.usefixtures("fast_retries")
def test_a_wait_for_a_connection_counts_against_the_retries(
    cdata: CData, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Calls with a 2 s timeout hold every slot of the shared client (one per loop and host); a call
    with a 0.2 s timeout, started once they are all at the server, waits for one, times out waiting,
    and that wait is an attempt, retried."""
    use(monkeypatch, cdata, timeout=2.0, max_retries=0)
    quick = cdata_connection(cdata, timeout=0.2, max_retries=1)
    monkeypatch.setenv("AIRFLOW_CONN_CDATA_QUICK", json.dumps(quick))
    cdata.emulator.inject("latency", route="list", seconds=3.0)

    async def every_slot_at_the_server() -> None:
        # On a loaded machine the quick call could otherwise take a slot before the others do.
        deadline = time.monotonic() + 1.5
        while cdata.emulator.counters.in_flight["list"] < ASYNC_POOL_SIZE:
            assert time.monotonic() < deadline, "the held calls never all reached the emulator"
            await asyncio.sleep(0.01)

    async def one_too_many() -> Any:
        hook, waiting = CDataHook(), CDataHook("cdata_quick")
        try:
            held = [asyncio.ensure_future(hook.alist_connections()) for _ in range(ASYNC_POOL_SIZE)]
            await every_slot_at_the_server()
            late = await asyncio.gather(waiting.alist_connections(), return_exceptions=True)
            return [*await asyncio.gather(*held, return_exceptions=True), *late]
        finally:
            await hook.aclose()
            await waiting.aclose()

    *held, waited = asyncio.run(one_too_many())
    assert all(isinstance(e, CDataAPIError) and "no free connection" not in e.message for e in held)
    assert all(e.status_code is None and "timed out" in e.message for e in held)
    assert isinstance(waited, CDataAPIError)
    assert waited.status_code is None
    assert "timed out: no free connection within 0.2 s" in waited.message
    assert waited.attempts == 2, "each wait was an attempt"


def test_async_calls_mask_the_first_tokens_and_airflows_jwt_redaction_covers_the_rest(
    cdata: CData, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The triggerer's path: a long-lived process, many child accounts, a token each."""
    from airflow.sdk._shared.logging.structlog import redact_jwt
    from airflow.sdk._shared.secrets_masker import redact

    use(monkeypatch, cdata)
    minted = record_minted_tokens(monkeypatch)
    accounts = [cdata.emulator.add_account(cdata.parent_id)["id"] for _ in range(MAX_MASKED_TOKENS + 3)]

    async def list_each_account() -> None:
        hook = CDataHook()
        try:
            for account in accounts:  # a token per child account
                await hook.alist_connections(account_id=account)
        finally:
            await hook.aclose()

    asyncio.run(list_each_account())
    assert len(minted) == len(accounts)
    assert all(redact(f"Bearer {token}") == "Bearer ***" for token in minted[:MAX_MASKED_TOKENS])
    assert all(token in str(redact(f"Bearer {token}")) for token in minted[MAX_MASKED_TOKENS:])
    # What keeps the later ones out of logs: Airflow's log processor for anything shaped like a JWT.
    for token in minted[MAX_MASKED_TOKENS:]:
        event = redact_jwt(None, "info", {"event": f"sent Authorization: Bearer {token} to CData"})
        assert event["event"] == "sent Authorization: Bearer eyJ*** to CData"


def test_sync_calls_mask_every_minted_and_connect_url_token(
    cdata: CData, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A task process: every token goes to Airflow's masker, however many."""
    from airflow.sdk._shared.secrets_masker import redact

    use(monkeypatch, cdata)
    minted = record_minted_tokens(monkeypatch)
    accounts = [cdata.emulator.add_account(cdata.parent_id)["id"] for _ in range(MAX_MASKED_TOKENS + 3)]
    hook = CDataHook()
    links = [
        hook.create_connection("Salesforce", "https://app.example.com/x", account_id=a) for a in accounts
    ]
    hook.close()
    assert len(minted) == len(accounts)
    assert all(redact(f"Bearer {token}") == "Bearer ***" for token in minted)
    assert all("token=***" in str(redact(link)) for link in links)
