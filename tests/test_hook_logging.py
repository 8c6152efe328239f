"""Logs at DEBUG, from every call sync and async, successes and failures, hold no secret.

Captured: every stdlib record (the hook's, urllib3's, aiohttp's, Airflow's) and everything
written to stdout/stderr (Airflow's structlog output). Searched for: the private key's base64 lines,
each minted JWT, each connect-URL token, and anything shaped like a JWT at all.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jwt
import pytest
from airflow.sdk._shared.secrets_masker import redact

from airflow_provider_cdata.exceptions import CDataError
from airflow_provider_cdata.hooks import CDataHook
from tests.conftest import CData, _private_key, cdata_connection

REDIRECT = "https://app.example.com/done"
UNKNOWN_ID = "123e4567-e89b-12d3-a456-426614174000"
JWT_SHAPE = re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}")
LOGGERS = [
    "",
    "airflow_provider_cdata",
    "urllib3",
    "aiohttp",
    "aiohttp.client",
    "aiohttp.internal",
    "airflow",
    "asyncio",
]


@pytest.fixture
def debug_logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    levels = {name: logging.getLogger(name).level for name in LOGGERS}
    for name in LOGGERS:
        caplog.set_level(logging.DEBUG, logger=name)
    yield caplog
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)


def exercise_every_call(hook: CDataHook, cdata: CData, mode: str) -> list[str]:
    """Every hook method, a few faults, a 401 re-mint and some failures; returns the connect URLs."""
    emu = cdata.emulator
    connection = emu.add_connection(cdata.account_id, "Salesforce", name="Sales", external_id="crm-1")
    urls: list[str] = []

    async def run_async() -> None:
        urls.append(await hook.acreate_connection("Salesforce", REDIRECT, name="N", external_id="x-1"))
        urls.append(await hook.aedit_connection(connection["id"], REDIRECT))
        await hook.alist_connections(data_source="Salesforce", external_id="crm-1")
        await hook.aclear_metadata(connection["id"])
        for kind in ("drop", "truncated", "html", "status"):
            emu.inject(kind, route="list", times=1)
            await hook.alist_connections()
        await failures_async()
        await hook.adelete_connection(connection["id"])
        await hook.aclose()

    async def failures_async() -> None:
        with pytest.raises(CDataError):
            await hook.aclear_metadata(UNKNOWN_ID)
        with pytest.raises(CDataError):
            await hook.acreate_connection("Nope", REDIRECT)

    if mode == "async":
        asyncio.run(run_async())
    else:
        urls.append(hook.create_connection("Salesforce", REDIRECT, name="N", external_id="x-1"))
        urls.append(hook.edit_connection(connection["id"], REDIRECT))
        hook.list_connections(data_source="Salesforce", external_id="crm-1")
        hook.clear_metadata(connection["id"])
        for kind in ("drop", "truncated", "html", "status"):
            emu.inject(kind, route="list", times=1)
            hook.list_connections()
        with pytest.raises(CDataError):
            hook.clear_metadata(UNKNOWN_ID)
        with pytest.raises(CDataError):
            hook.create_connection("Nope", REDIRECT)
        hook.delete_connection(connection["id"])
        assert hook.test_connection()[0]
    return urls


def minted_tokens(cdata: CData) -> set[str]:
    """The JWTs the hook sent, rebuilt from the claims the emulator verified (RS256 is deterministic)."""
    key = _private_key(cdata.keys.private_pem)
    claims = {json.dumps(r.claims) for r in cdata.emulator.requests() if r.claims}
    return {jwt.encode(json.loads(c), key, algorithm="RS256", headers={"typ": "JWT"}) for c in claims}


def windows(text: str, size: int = 20) -> set[str]:
    return {text[i : i + size] for i in range(len(text) - size + 1)}


def key_lines(pem: str) -> list[str]:
    return [line for line in pem.splitlines() if line and not line.startswith("-----")]


def everything_logged(caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]) -> str:
    records = []
    for record in caplog.records:
        records.append(record.getMessage())
        records.append(repr(record.args))
        if record.exc_info and record.exc_info[1] is not None:
            records.append(repr(record.exc_info[1]))
    out, err = capfd.readouterr()
    return "\n".join([*records, out, err])


@pytest.mark.usefixtures("fast_retries")
@pytest.mark.parametrize("mode", ["sync", "async"])
def test_debug_logs_hold_no_key_no_jwt_and_no_connect_url_token(
    cdata: CData,
    monkeypatch: pytest.MonkeyPatch,
    debug_logs: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
    mode: str,
) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_CDATA_DEFAULT", json.dumps(cdata_connection(cdata)))
    hook = CDataHook()
    urls = exercise_every_call(hook, cdata, mode)
    # A 401 and its re-mint: the server's clock runs past the cached token's expiry.
    cdata.emulator.clock.advance(400)
    hook.clock = lambda: time.time() + 200
    if mode == "sync":
        hook.list_connections()
    else:

        async def list_and_close() -> None:
            await hook.alist_connections()
            await hook.aclose()

        asyncio.run(list_and_close())
    assert hook.tokens_minted == 2
    # A key that cannot be loaded, and a key CData does not know.
    broken = {**cdata_connection(cdata), "password": cdata.keys.private_pem[:300]}
    monkeypatch.setenv("AIRFLOW_CONN_CDATA_DEFAULT", json.dumps(broken))
    assert not CDataHook().test_connection()[0]

    logged = everything_logged(debug_logs, capfd)
    assert re.search(r"CData API (GET|POST|DELETE) /poweredby/\S+ -> 200 in [\d.]+ ms \(attempt \d\)", logged)
    assert "retry 1 of 5" in logged
    if mode == "sync":  # the HTTP library's own DEBUG lines are in the scan
        assert "urllib3" in {r.name.split(".")[0] for r in debug_logs.records}
    else:  # aiohttp writes no line per request, even at DEBUG; its loggers are captured all the same
        assert all(logging.getLogger(name).isEnabledFor(logging.DEBUG) for name in LOGGERS)

    connect_tokens = [token for url in urls for token in parse_qs(urlsplit(url).query)["token"]]
    tokens = minted_tokens(cdata)
    assert len(connect_tokens) == 2
    assert len(tokens) == 2
    for secret in [*tokens, *connect_tokens, *key_lines(cdata.keys.private_pem)]:
        assert secret not in logged
    # Not even a fragment: no 20 characters in a row of a signature or of the key's base64 body.
    logged_windows = windows(logged)
    signatures = [token.split(".")[2] for token in [*tokens, *connect_tokens]]
    for secret in [*signatures, "".join(key_lines(cdata.keys.private_pem))]:
        assert not windows(secret) & logged_windows
    assert not JWT_SHAPE.search(logged), "nothing shaped like a JWT"


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_minted_and_connect_url_tokens_go_to_airflows_masker(
    cdata_hook_env: CDataHook, cdata: CData, mode: str
) -> None:
    hook = cdata_hook_env

    async def create_async() -> str:
        try:
            return await hook.acreate_connection("Salesforce", REDIRECT)
        finally:
            await hook.aclose()

    url = hook.create_connection("Salesforce", REDIRECT) if mode == "sync" else asyncio.run(create_async())
    (token,) = minted_tokens(cdata)
    (connect_token,) = parse_qs(urlsplit(url).query)["token"]
    assert redact(f"Bearer {token}") == "Bearer ***"
    shown: Any = redact(f"go to {url}")
    assert connect_token not in shown
    assert "token=***" in shown


def test_mask_connect_url_masks_a_link_read_from_xcom_in_another_process() -> None:
    from airflow_provider_cdata.hooks import mask_connect_url

    url = "https://cloud.cdata.com/oem/user/connections/edit?token=not-a-jwt-but-secret-42&driver=Jira"
    assert "not-a-jwt-but-secret-42" in redact(url), "unknown to the masker until registered"
    assert mask_connect_url(url) == url
    assert redact(url) == "https://cloud.cdata.com/oem/user/connections/edit?token=***&driver=Jira"
