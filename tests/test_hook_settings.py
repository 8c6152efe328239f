"""The Airflow connection: host forms, plain-http refusal, extras, the key, and test_connection()."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from airflow.sdk import Connection
from cryptography.hazmat.primitives import serialization

from airflow_provider_cdata.emulator import Emulator, KeyPair
from airflow_provider_cdata.exceptions import CDataAPIError, CDataConfigError
from airflow_provider_cdata.hooks import CDataHook, ConnectionSettings, settings_from_connection
from tests.conftest import CData, cdata_connection
from tests.test_hook_calls import Runner, hook_with, runner_fixture, use_connection

run = runner_fixture()
PARENT = "0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9"


def settings(**fields: Any) -> ConnectionSettings:
    extra = fields.pop("extra", {})
    fields.setdefault("login", PARENT)
    return settings_from_connection(
        Connection(conn_id="cdata_test", conn_type="cdata", extra=json.dumps(extra), **fields)
    )


def config_error(**fields: Any) -> CDataConfigError:
    with pytest.raises(CDataConfigError) as caught:
        settings(**fields)
    return caught.value


# -- host -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("fields", "api_url"),
    [
        ({}, "https://cloud.cdata.com/api"),
        ({"host": "https://cloud.cdata.com/api"}, "https://cloud.cdata.com/api"),
        ({"host": "https://cloud.cdata.com/api/"}, "https://cloud.cdata.com/api"),
        ({"host": "cloud.cdata.com"}, "https://cloud.cdata.com/api"),
        ({"host": "cloud.cdata.com/api"}, "https://cloud.cdata.com/api"),
        ({"host": "cloud.cdata.com", "schema": "api"}, "https://cloud.cdata.com/api"),
        (
            {"host": "gw.example.com", "port": 8443, "schema": "cdata/api"},
            "https://gw.example.com:8443/cdata/api",
        ),
        ({"host": "https://gw.example.com"}, "https://gw.example.com/api"),
        ({"host": "https://gw.example.com/"}, "https://gw.example.com"),
        ({"host": "http://127.0.0.1:8765/api"}, "http://127.0.0.1:8765/api"),
        ({"host": "http://127.9.9.9:8765/api"}, "http://127.9.9.9:8765/api"),
        ({"host": "http://localhost:8765/api"}, "http://localhost:8765/api"),
        ({"host": "http://[::1]:8765/api"}, "http://[::1]:8765/api"),
    ],
)
def test_host_forms(fields: dict[str, Any], api_url: str) -> None:
    assert settings(**fields).api_url == api_url


@pytest.mark.parametrize(
    "host",
    [
        "ftp://cloud.cdata.com/api",
        "https://user:pw@cloud.cdata.com/api",
        "https://cloud.cdata.com/api?x=1",
        "https://[::1/",
    ],
)
def test_unusable_hosts_are_refused_naming_host(host: str) -> None:
    error = config_error(host=host)
    assert error.field == "host"
    assert "host" in str(error)


@pytest.mark.parametrize(
    "host", ["http://cloud.cdata.com/api", "http://10.0.0.5:8080/api", "http://localhost.evil.com/api"]
)
def test_plain_http_to_a_remote_host_is_refused(host: str) -> None:
    error = config_error(host=host)
    assert error.field == "host"
    assert "allow_insecure_http" in str(error)
    assert settings(host=host, extra={"allow_insecure_http": "true"}).api_url == host


def test_plain_http_is_refused_before_any_request(
    monkeypatch: pytest.MonkeyPatch, run: Runner, keys: KeyPair
) -> None:
    # 198.51.100.0/24 is TEST-NET-2: a request there would hang until the timeout, not fail at once.
    conn = {
        "conn_type": "cdata",
        "host": "http://198.51.100.7/api",
        "login": PARENT,
        "password": keys.private_pem,
    }
    monkeypatch.setenv("AIRFLOW_CONN_CDATA_DEFAULT", json.dumps(conn))
    started = time.monotonic()
    with pytest.raises(CDataConfigError, match="plain http://") as caught:
        run(CDataHook(), "list_connections", account_id=PARENT)
    assert caught.value.field == "host"
    assert time.monotonic() - started < 1


def _non_loopback_address() -> str | None:
    """An address of this machine that is not loopback (the route to a TEST-NET address), if any."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # UDP connect sends nothing; it only picks a route
        except OSError:
            return None
        address: str = probe.getsockname()[0]
    return None if address.startswith("127.") else address


def test_plain_http_to_a_real_remote_address_sends_nothing_unless_allowed(
    keys: KeyPair, monkeypatch: pytest.MonkeyPatch, run: Runner
) -> None:
    address = _non_loopback_address()
    if address is None:
        pytest.skip("this machine has no non-loopback IPv4 address to serve the emulator on")
    with Emulator(host="0.0.0.0") as emu:
        parent = emu.register_parent(keys.public_pem)
        account = emu.add_account(parent)["id"]
        conn = {
            "conn_type": "cdata",
            "host": f"http://{address}:{emu.port}/api",
            "login": parent,
            "password": keys.private_pem,
            "extra": {"account_id": account},
        }
        monkeypatch.setenv("AIRFLOW_CONN_CDATA_DEFAULT", json.dumps(conn))
        with pytest.raises(CDataConfigError, match="plain http://"):
            run(CDataHook(), "list_connections")
        assert emu.counters.connections_accepted == 0
        conn["extra"] = {"account_id": account, "allow_insecure_http": True}
        monkeypatch.setenv("AIRFLOW_CONN_CDATA_DEFAULT", json.dumps(conn))
        assert run(CDataHook(), "list_connections") == []
        assert emu.counters.count("list", 200) == 1


# -- extras ------------------------------------------------------------------------------------------------
def test_defaults() -> None:
    got = settings(password="pem")
    assert (got.token_lifetime, got.timeout, got.max_retries, got.allow_insecure_http) == (
        300,
        30.0,
        5,
        False,
    )
    assert got.account_id is None
    assert "pem" not in repr(got), "the key never shows in a repr"


def test_string_extras_from_a_uri_form_connection_are_coerced() -> None:
    got = settings(
        extra={
            "token_lifetime": "600",
            "timeout": "2.5",
            "max_retries": "0",
            "allow_insecure_http": "False",
            "account_id": "11111111-2222-4333-8444-555555555555".upper(),
        }
    )
    assert (got.token_lifetime, got.timeout, got.max_retries, got.allow_insecure_http) == (600, 2.5, 0, False)
    assert got.account_id == "11111111-2222-4333-8444-555555555555"


@pytest.mark.parametrize(
    ("name", "value", "fragment"),
    [
        ("token_lifetime", "-5", "token_lifetime must be a positive integer"),
        ("token_lifetime", 0, "token_lifetime must be a positive integer"),
        ("token_lifetime", "abc", "token_lifetime must be a positive integer"),
        ("token_lifetime", 10, "between 30 and 3600"),
        ("token_lifetime", 86400, "between 30 and 3600"),
        ("token_lifetime", True, "token_lifetime must be"),
        ("token_lifetime", 2.5, "token_lifetime must be"),
        ("timeout", "0", "timeout must be a positive number"),
        ("timeout", -1, "timeout must be a positive number"),
        ("timeout", "soon", "timeout must be a positive number"),
        ("max_retries", "-1", "max_retries must be a non-negative integer"),
        ("max_retries", 21, "between 0 and 20"),
        ("allow_insecure_http", "maybe", "allow_insecure_http must be true or false"),
        ("account_id", "../other", "account_id must be a UUID"),
        ("private_key_path", 42, "private_key_path must be a file path"),
    ],
)
def test_bad_extras_are_refused_naming_the_field(name: str, value: object, fragment: str) -> None:
    error = config_error(extra={name: value})
    assert error.field == name
    assert fragment in str(error)
    assert "'cdata_test'" in str(error), "the message names the Airflow connection"


def test_extra_that_is_not_an_object_is_refused() -> None:
    error = config_error(extra=["a", "list"])
    assert error.field == "extra"


def test_empty_login_is_refused() -> None:
    error = config_error(login="")
    assert error.field == "login"
    assert "parent account id" in str(error)


def test_token_lifetime_reaches_the_token(cdata: CData, monkeypatch: pytest.MonkeyPatch, run: Runner) -> None:
    run(hook_with(monkeypatch, cdata, token_lifetime="900"), "list_connections")
    claims = cdata.emulator.requests("list")[0].claims
    assert claims is not None
    assert claims["exp"] - claims["iat"] == 900


def test_a_uri_form_connection_works(cdata: CData, monkeypatch: pytest.MonkeyPatch, run: Runner) -> None:
    uri = (
        f"cdata://{cdata.parent_id}:{quote(cdata.keys.private_pem, safe='')}@{quote(cdata.base_url, safe='')}"
        f"?account_id={cdata.account_id}&token_lifetime=600&max_retries=1"
    )
    monkeypatch.setenv("AIRFLOW_CONN_CDATA_DEFAULT", uri)
    hook = CDataHook()
    assert run(hook, "list_connections") == []
    assert hook.settings.api_url == cdata.base_url
    assert (hook.settings.token_lifetime, hook.settings.max_retries) == (600, 1)


def test_a_json_connection_survives_airflows_uri_round_trip(cdata: CData) -> None:
    original = Connection(
        conn_id="cdata_default", **{**cdata_connection(cdata), "extra": json.dumps({"timeout": 7})}
    )
    again = Connection.from_uri(original.get_uri(), conn_id="cdata_default")
    assert settings_from_connection(again) == settings_from_connection(original)


def test_a_missing_airflow_connection_is_a_config_error(run: Runner) -> None:
    with pytest.raises(CDataConfigError, match="'no_such_conn' is not defined") as caught:
        run(CDataHook("no_such_conn"), "list_connections")
    assert caught.value.field == "cdata_conn_id"


# -- the key, through the hook ----------------------------------------------------------------------------
def _key_lines(pem: str) -> list[str]:
    return [line for line in pem.splitlines() if line and not line.startswith("-----")]


def test_key_from_private_key_path(
    cdata: CData, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, run: Runner
) -> None:
    path = tmp_path / "parent.pem"
    path.write_text(cdata.keys.private_pem)
    conn = {**cdata_connection(cdata, private_key_path=str(path)), "password": None}
    monkeypatch.setenv("AIRFLOW_CONN_CDATA_DEFAULT", json.dumps(conn))
    assert run(CDataHook(), "list_connections") == []


@pytest.mark.parametrize("problem", ["empty", "missing file", "encrypted", "garbage", "other key"])
def test_unusable_keys_fail_clearly_without_key_material_and_send_nothing(
    cdata: CData,
    other_keys: KeyPair,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    run: Runner,
    problem: str,
) -> None:
    private = serialization.load_pem_private_key(cdata.keys.private_pem.encode(), password=None)
    encrypted = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"passphrase"),
    ).decode()
    cases: dict[str, tuple[dict[str, Any], str, str]] = {
        "empty": ({"password": ""}, "password", "no private key"),
        "missing file": (
            {"password": None, "extra": {"private_key_path": str(tmp_path / "nope.pem")}},
            "private_key_path",
            "cannot read the key file",
        ),
        "encrypted": ({"password": encrypted}, "password", "encrypted"),
        "garbage": ({"password": cdata.keys.private_pem[:200]}, "password", "not a PEM private key"),
        "other key": ({"password": other_keys.private_pem}, "", ""),
    }
    fields, field, fragment = cases[problem]
    conn = {**cdata_connection(cdata), **fields}
    conn["extra"] = {"account_id": cdata.account_id, **fields.get("extra", {})}
    monkeypatch.setenv("AIRFLOW_CONN_CDATA_DEFAULT", json.dumps(conn))
    if problem == "other key":  # a valid key CData does not know: the API says so, once re-minted
        with pytest.raises(CDataAPIError, match="HTTP 401"):
            run(CDataHook(), "list_connections")
        return
    with pytest.raises(CDataConfigError) as caught:
        run(CDataHook(), "list_connections")
    assert caught.value.field == field
    assert fragment in str(caught.value)
    for line in _key_lines(cdata.keys.private_pem) + _key_lines(encrypted):
        assert line not in str(caught.value)
    assert cdata.emulator.counters.count() == 0


def test_the_key_is_loaded_once_per_hook_and_shared_between_hooks(
    cdata_hook_env: CDataHook, cdata: CData, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow_provider_cdata import auth

    calls: list[str] = []
    original = auth._load_pem

    def counting(pem: str, field: str) -> Any:
        calls.append(field)
        return original(pem, field)

    monkeypatch.setattr(auth, "_load_pem", counting)
    hooks = [CDataHook() for _ in range(3)]
    for hook in hooks:
        for _ in range(3):
            hook.list_connections()
    assert len(calls) == 3, "one key load per hook"
    assert len({id(hook.settings) for hook in hooks}) == 3
    assert len({id(hook._minter.key.key) for hook in hooks if hook._minter}) == 1, "one parsed key object"


# -- test_connection() --------------------------------------------------------------------------------------
def test_test_connection_reports_success_with_the_count(cdata_hook_env: CDataHook, cdata: CData) -> None:
    cdata.emulator.add_connection(cdata.account_id)
    cdata.emulator.add_connection(cdata.account_id)
    assert cdata_hook_env.test_connection() == (
        True,
        f"Connected to {cdata.base_url}: 2 connections visible to account {cdata.account_id}",
    )
    assert cdata.emulator.counters.count("list") == 1


def test_test_connection_with_an_unregistered_key_hints_at_registration_and_clock(
    cdata: CData, other_keys: KeyPair, monkeypatch: pytest.MonkeyPatch
) -> None:
    conn = {**cdata_connection(cdata), "password": other_keys.private_pem}
    monkeypatch.setenv("AIRFLOW_CONN_CDATA_DEFAULT", json.dumps(conn))
    ok, message = CDataHook().test_connection()
    assert not ok
    assert "HTTP 401" in message
    assert "public key is registered" in message
    assert f"login is the parent account id ({cdata.parent_id})" in message
    assert "clock" in message
    assert cdata.emulator.counters.count() == 1, "one call: no re-mint, no retry"


def test_test_connection_with_a_foreign_account_reports_403(
    cdata: CData, monkeypatch: pytest.MonkeyPatch
) -> None:
    ok, message = hook_with(
        monkeypatch, cdata, account_id="123e4567-e89b-12d3-a456-426614174000"
    ).test_connection()
    assert not ok
    assert "HTTP 403" in message
    assert "child account" in message


def test_test_connection_reports_an_unreachable_host_quickly(
    cdata: CData, monkeypatch: pytest.MonkeyPatch
) -> None:
    hook = hook_with(monkeypatch, cdata)
    cdata.emulator.stop()
    started = time.monotonic()
    ok, message = hook.test_connection()
    assert not ok
    assert message.startswith(f"Could not reach {cdata.base_url}: connection error")
    assert time.monotonic() - started < 2, "no retries for a connection test"


def test_test_connection_reports_a_tls_failure(cdata: CData, monkeypatch: pytest.MonkeyPatch) -> None:
    conn = {**cdata_connection(cdata), "host": cdata.base_url.replace("http://", "https://")}
    monkeypatch.setenv("AIRFLOW_CONN_CDATA_DEFAULT", json.dumps(conn))
    ok, message = CDataHook().test_connection()
    assert not ok
    assert "TLS failure" in message


def test_a_tls_failure_is_not_retried(cdata: CData, monkeypatch: pytest.MonkeyPatch, run: Runner) -> None:
    conn = {**cdata_connection(cdata, max_retries=3), "host": cdata.base_url.replace("http://", "https://")}
    monkeypatch.setenv("AIRFLOW_CONN_CDATA_DEFAULT", json.dumps(conn))
    with pytest.raises(CDataAPIError) as caught:
        run(CDataHook(), "list_connections")
    assert caught.value.status_code is None
    assert caught.value.attempts == 1
    assert caught.value.message.startswith("TLS failure")
    assert cdata.emulator.counters.connections_accepted == 1


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"password": ""}, "no private key"),
        ({"extra": {"token_lifetime": "-1"}}, "token_lifetime must be a positive integer"),
        ({"extra": {}}, "account_id is needed"),
        ({"host": "http://cloud.cdata.com/api"}, "plain http://"),
    ],
)
def test_test_connection_never_raises_on_a_bad_connection(
    cdata: CData, monkeypatch: pytest.MonkeyPatch, change: dict[str, Any], fragment: str
) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_CDATA_DEFAULT", json.dumps({**cdata_connection(cdata), **change}))
    ok, message = CDataHook().test_connection()
    assert not ok
    assert fragment in message
    assert cdata.emulator.counters.count() == 0


def test_test_connection_of_a_missing_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    ok, message = CDataHook("not_there").test_connection()
    assert (ok, "'not_there' is not defined" in message) == (False, True)


def test_a_named_connection_is_read(cdata: CData, monkeypatch: pytest.MonkeyPatch, run: Runner) -> None:
    use_connection(monkeypatch, cdata, conn_id="cdata_other")
    hook = CDataHook("cdata_other")
    assert run(hook, "list_connections") == []
    assert hook.settings.api_url == cdata.base_url
