"""Bad input, across every layer a user reaches: the operators, the sensor (poke, reschedule and
deferrable), the trigger, the hook and the Airflow connection. Each case must fail with an error that
names the field the user wrote, and the emulator must not have received a single request (or even a
TCP connection).

The validators themselves are unit-tested in tests/test_hook_validation.py, the connection settings in
tests/test_hook_settings.py, and a first set of hook calls there too; the cases here are other values,
mostly reaching those checks through the operators, the sensor and the trigger, the way a DAG does
(values rendered from params or pulled from XCom, hence the wrong types).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from airflow_provider_cdata.emulator import Emulator, KeyPair
from airflow_provider_cdata.exceptions import CDataConfigError, CDataError, CDataValidationError
from tests.conftest import CData, cdata_connection

ID = "0b5f7d5c-3e1a-4c55-9a66-2f3b1e7c9d10"
REDIRECT = "https://app.example.com/done"


@dataclass
class Env:
    """The emulator, and a way to change the Airflow connection ``cdata_default`` for one case."""

    cdata: CData
    monkeypatch: pytest.MonkeyPatch
    tmp_path: Path

    def connection(self, **fields: Any) -> None:
        """``cdata_default`` with some fields replaced; an ``extra`` dict is merged into the extras, any
        other ``extra`` replaces them."""
        connection = cdata_connection(self.cdata)
        extra = fields.pop("extra", {})
        connection["extra"] = {**connection["extra"], **extra} if isinstance(extra, dict) else extra
        connection.update(fields)
        self.monkeypatch.setenv("AIRFLOW_CONN_CDATA_DEFAULT", json.dumps(connection))


@dataclass(frozen=True)
class Bad:
    field: str  # the field the error must name
    act: Callable[[Env], Any]  # raises, or (a trigger) returns its event
    connection: dict[str, Any] | None = None  # changes to cdata_default for this case


# -- the layers ------------------------------------------------------------------------------------
def operator(kind: str, **kwargs: Any) -> Callable[[Env], Any]:
    """Build the operator (its own checks run here) and execute it as Airflow's task runner would."""

    def act(_: Env) -> Any:
        from airflow_provider_cdata import operators

        task = getattr(operators, f"{kind}Operator")(task_id="bad_input", **kwargs)
        return task.execute(cast(Any, {}))

    return act


def sensor(mode: str = "poke", **kwargs: Any) -> Callable[[Env], Any]:
    def act(_: Env) -> Any:
        from airflow_provider_cdata.sensors import ConnectionSensor

        wait = ConnectionSensor(
            task_id="bad_input",
            mode="reschedule" if mode == "reschedule" else "poke",
            deferrable=mode == "deferrable",
            **kwargs,
        )
        return wait.execute(cast(Any, {})) if mode == "deferrable" else wait.poke(cast(Any, {}))

    return act


def trigger(criteria: dict[str, Any], **kwargs: Any) -> Callable[[Env], Any]:
    def act(_: Env) -> Any:
        from airflow_provider_cdata.triggers import ConnectionTrigger

        async def first_event() -> Any:
            async for event in ConnectionTrigger(criteria=criteria, poke_interval=0.1, **kwargs).run():
                return event.payload
            return None

        return asyncio.run(first_event())

    return act


def hook(
    method: str | None = None, *args: Any, hook_kwargs: dict[str, Any] | None = None, **kwargs: Any
) -> Callable[[Env], Any]:
    def act(_: Env) -> Any:
        from airflow_provider_cdata.hooks import CDataHook

        built = CDataHook(**(hook_kwargs or {}))
        return getattr(built, method)(*args, **kwargs) if method else built

    return act


def list_through_the_operator(_: Env) -> Any:
    return operator("ListConnections")(_)


def _pem(key: Any, public: bool = False) -> str:
    if public:
        return str(
            key.public_key()
            .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
            .decode()
        )
    return str(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode()
    )


def key_case(kind: str) -> Callable[[Env], Any]:
    """The connection's key replaced by another kind of PEM, used through the sensor."""

    def act(env: Env) -> Any:
        from cryptography.hazmat.primitives.serialization import load_pem_private_key

        rsa_key = load_pem_private_key(env.cdata.keys.private_pem.encode(), password=None)
        pem = (
            _pem(rsa_key, public=True) if kind == "public" else _pem(ec.generate_private_key(ec.SECP256R1()))
        )
        env.connection(password=pem)
        return sensor(external_id="x")(env)

    return act


def key_path_is_a_directory(env: Env) -> Any:
    env.connection(password="", extra={"private_key_path": str(env.tmp_path)})
    return hook("list_connections")(env)


# -- the cases ---------------------------------------------------------------------------------------
CASES: dict[str, Bad] = {
    # CreateConnectionOperator
    "create: data_source a list from XCom": Bad(
        "data_source", operator("CreateConnection", data_source=["Salesforce"], redirect_url=REDIRECT)
    ),
    "create: scheme-relative redirect URL": Bad(
        "redirect_url",
        operator("CreateConnection", data_source="Salesforce", redirect_url="//evil.example/x"),
    ),
    "create: JaVaScRiPt: redirect URL": Bad(
        "redirect_url",
        operator(
            "CreateConnection", data_source="Salesforce", redirect_url="JaVaScRiPt:alert(document.cookie)"
        ),
    ),
    "create: right-to-left override in the name": Bad(
        "connection_name",
        operator(
            "CreateConnection",
            data_source="Salesforce",
            redirect_url=REDIRECT,
            connection_name="Sales\u202eMRC",
        ),
    ),
    "create: external_id a dict from XCom": Bad(
        "external_id",
        operator("CreateConnection", data_source="Salesforce", redirect_url=REDIRECT, external_id={"id": 1}),
    ),
    "create: account_id with ../": Bad(
        "account_id",
        operator(
            "CreateConnection",
            data_source="Salesforce",
            redirect_url=REDIRECT,
            account_id="../../account/delete/x",
        ),
    ),
    # EditConnectionOperator
    "edit: connection_id an int from XCom": Bad(
        "connection_id", operator("EditConnection", connection_id=123, redirect_url=REDIRECT)
    ),
    "edit: header injection in the redirect URL": Bad(
        "redirect_url",
        operator("EditConnection", connection_id=ID, redirect_url=f"{REDIRECT}\r\nSet-Cookie: a=b"),
    ),
    # ListConnectionsOperator
    "list: modified_before not a time": Bad(
        "modified_before", operator("ListConnections", modified_before="yesterday")
    ),
    "list: modified_after an epoch int": Bad(
        "modified_after", operator("ListConnections", modified_after=1700000000)
    ),
    "list: data_source only whitespace": Bad("data_source", operator("ListConnections", data_source="\t ")),
    "list: external_id of 300 characters": Bad(
        "external_id", operator("ListConnections", external_id="x" * 300)
    ),
    # DeleteConnectionOperator
    "delete: connection_ids a string, not a list": Bad(
        "connection_ids", operator("DeleteConnection", connection_ids=ID)
    ),
    "delete: a connection without an id": Bad(
        "connection_ids[0]", operator("DeleteConnection", connection_ids=[{"name": "no id here"}])
    ),
    "delete: None in the list": Bad(
        "connection_ids[1]", operator("DeleteConnection", connection_ids=[ID, None])
    ),
    "delete: dry_run neither true nor false": Bad(
        "dry_run", operator("DeleteConnection", connection_id=ID, dry_run="maybe")
    ),
    "delete: max_deletions rendered negative": Bad(
        "max_deletions", operator("DeleteConnection", connection_id=ID, max_deletions="-3")
    ),
    "delete: URL-encoded ../ as the id": Bad(
        "connection_id", operator("DeleteConnection", connection_id="%2e%2e%2faccount%2fdelete")
    ),
    # ClearMetadataOperator
    "clear: connection_ids a dict": Bad(
        "connection_ids", operator("ClearMetadata", connection_ids={"id": ID})
    ),
    "clear: data_source with ids": Bad(
        "data_source", operator("ClearMetadata", connection_ids=[], data_source="Salesforce")
    ),
    "clear: max_concurrency a string": Bad("max_concurrency", operator("ClearMetadata", max_concurrency="8")),
    "clear: an id with a trailing space": Bad(
        "connection_ids[0]", operator("ClearMetadata", connection_ids=[f"{ID.upper()} "])
    ),
    # CreateConnectionOperator's data-source check: bad input is refused before List Data Sources too
    "create: check_data_source neither yes nor no": Bad(
        "check_data_source",
        operator(
            "CreateConnection", data_source="Salesforce", redirect_url=REDIRECT, check_data_source="perhaps"
        ),
    ),
    "create: a bad redirect URL with the check on": Bad(
        "redirect_url", operator("CreateConnection", data_source="Salesforce", redirect_url="ftp://x")
    ),
    # CreateAccountOperator, DeleteAccountOperator
    "account: external_id a list from XCom": Bad("external_id", operator("CreateAccount", external_id=["t"])),
    "account: external_id with a slash": Bad("external_id", operator("CreateAccount", external_id="a/../b")),
    "account: external_id empty": Bad("external_id", operator("CreateAccount", external_id="  ")),
    "account: account_name with a control character": Bad(
        "account_name", operator("CreateAccount", external_id="t-1", account_name="Acme\x07")
    ),
    "delete account: account_ids one string": Bad("account_ids", operator("DeleteAccount", account_ids=ID)),
    "delete account: account_id not a UUID": Bad(
        "account_id", operator("DeleteAccount", account_id="../connection/list")
    ),
    "delete account: an account dict without an id": Bad(
        "account_ids[1]", operator("DeleteAccount", account_ids=[ID, {"externalId": "t"}])
    ),
    "delete account: delete_connections neither yes nor no": Bad(
        "delete_connections", operator("DeleteAccount", account_id=ID, delete_connections="sure")
    ),
    "delete account: max_deletions negative": Bad(
        "max_deletions", operator("DeleteAccount", account_id=ID, max_deletions="-1")
    ),
    # ConnectionSensor, each mode
    "sensor poke: an empty status": Bad("statuses", sensor(external_id="x", statuses=[""])),
    "sensor poke: month 13": Bad("modified_after", sensor(modified_after="2024-13-45T00:00:00Z")),
    "sensor reschedule: NUL in data_source": Bad(
        "data_source", sensor("reschedule", data_source="Sales\x00force")
    ),
    "sensor reschedule: external_id of 300 characters": Bad(
        "external_id", sensor("reschedule", external_id="x" * 300)
    ),
    "sensor deferrable: connection_name as bytes": Bad(
        "connection_name", sensor("deferrable", connection_name=b"Acme CRM")
    ),
    "sensor deferrable: account_id not a UUID": Bad(
        "account_id", sensor("deferrable", external_id="x", account_id="not-a-uuid")
    ),
    # ConnectionTrigger (rebuilt from serialized kwargs in the triggerer)
    "trigger: ANSI escape in external_id": Bad("external_id", trigger({"external_id": "\x1b[31mred"})),
    "trigger: modified_after not a time": Bad("modified_after", trigger({"modified_after": "soon"})),
    "trigger: account_id with ../": Bad("account_id", trigger({"external_id": "x"}, account_id="../x")),
    # CDataHook
    "hook: name of 256 characters": Bad(
        "name", hook("create_connection", "Salesforce", REDIRECT, name="n" * 256)
    ),
    "hook: redirect URL as bytes": Bad(
        "redirect_url", hook("create_connection", "Salesforce", REDIRECT.encode())
    ),
    "hook: id in braces": Bad("connection_id", hook("edit_connection", "{" + ID + "}", REDIRECT)),
    "hook: editable_name a word that is no bool": Bad(
        "editable_name", hook("create_connection", "Salesforce", REDIRECT, name="n", editable_name="locked")
    ),
    "hook: editable_name a list": Bad(
        "editable_name", hook("edit_connection", ID, REDIRECT, name="n", editable_name=[False])
    ),
    "hook: no redirect_url, no data_source": Bad("redirect_url", hook("create_connection")),
    "hook: data_source blank when given": Bad("data_source", hook("create_connection", " ", REDIRECT)),
    "hook: edit name with a newline": Bad("name", hook("edit_connection", ID, REDIRECT, name="a\nb")),
    "hook: id with a query": Bad("connection_id", hook("clear_metadata", f"{ID}?all=true")),
    "hook: right-to-left override alone": Bad("data_source", hook("list_connections", data_source="\u202e")),
    "hook: newline in the connection id": Bad(
        "cdata_conn_id", hook(hook_kwargs={"cdata_conn_id": "cdata\ndefault"})
    ),
    "hook: empty account_id": Bad("account_id", hook(hook_kwargs={"account_id": ""})),
    "hook: create_account external_id empty": Bad("external_id", hook("create_account", external_id="")),
    "hook: create_account external_id a path": Bad(
        "external_id", hook("create_account", external_id="../account/delete/x")
    ),
    "hook: create_account account_name a dict": Bad(
        "account_name", hook("create_account", account_name={"n": 1})
    ),
    "hook: get_account empty": Bad("id_or_external_id", hook("get_account", "")),
    "hook: get_account with ../": Bad("id_or_external_id", hook("get_account", "../../connection/list")),
    "hook: get_account an int": Bad("id_or_external_id", hook("get_account", 42)),
    "hook: update_account id not a UUID": Bad(
        "account_id", hook("update_account", "acme", account_name="Acme")
    ),
    "hook: update_account with nothing to change": Bad("external_id", hook("update_account", ID)),
    "hook: update_account name with a newline": Bad(
        "account_name", hook("update_account", ID, account_name="a\nb")
    ),
    "hook: delete_account id with a query": Bad("account_id", hook("delete_account", f"{ID}?all=true")),
    "hook: delete_account id None": Bad("account_id", hook("delete_account", None)),
    # The Airflow connection, reached through operators, the sensor and the hook
    "connection: javascript: host": Bad("host", list_through_the_operator, {"host": "javascript:alert(1)"}),
    "connection: no parent id, through List Accounts": Bad("login", operator("ListAccounts"), {"login": ""}),
    "connection: a bad host, through List Data Sources": Bad(
        "host", operator("ListDataSources"), {"host": "file:///etc/passwd"}
    ),
    "connection: host with a fragment": Bad(
        "host", sensor(external_id="x"), {"host": "https://cloud.cdata.com/api#x"}
    ),
    "connection: plain http to a metadata address": Bad(
        "host", hook("list_connections"), {"host": "http://169.254.169.254/latest"}
    ),
    "connection: login only spaces": Bad("login", list_through_the_operator, {"login": "   "}),
    "connection: no login": Bad("login", sensor("deferrable", external_id="x"), {"login": None}),
    "connection: a public key as the password": Bad("password", key_case("public")),
    "connection: an EC key as the password": Bad("password", key_case("ec")),
    "connection: private_key_path a directory": Bad("private_key_path", key_path_is_a_directory),
    "connection: extra not JSON": Bad("extra", list_through_the_operator, {"extra": "{not json"}),
    "connection: negative token lifetime": Bad(
        "token_lifetime", sensor(external_id="x"), {"extra": {"token_lifetime": -300}}
    ),
    "connection: timeout nan": Bad("timeout", hook("list_connections"), {"extra": {"timeout": "nan"}}),
    "connection: timeout inf": Bad("timeout", list_through_the_operator, {"extra": {"timeout": "inf"}}),
    "connection: max_retries 1e9": Bad(
        "max_retries", hook("list_connections"), {"extra": {"max_retries": 1e9}}
    ),
    "connection: allow_insecure_http a list": Bad(
        "allow_insecure_http", list_through_the_operator, {"extra": {"allow_insecure_http": ["true"]}}
    ),
    "connection: account_id an int": Bad(
        "account_id", list_through_the_operator, {"extra": {"account_id": 12345}}
    ),
}


@pytest.fixture(scope="module")
def module_cdata(keys: KeyPair) -> Iterator[CData]:
    """One emulator for every case (each starts from reset counters): the cases send nothing anyway."""
    with Emulator() as emulator:
        parent_id = emulator.register_parent(keys.public_pem)
        account_id = emulator.add_account(parent_id)["id"]
        yield CData(emulator=emulator, keys=keys, parent_id=parent_id, account_id=account_id)


@pytest.fixture
def env(module_cdata: CData, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Env:
    from airflow.sdk.bases.operator import ExecutorSafeguard

    monkeypatch.setattr(ExecutorSafeguard, "test_mode", True)  # execute() as the task runner calls it
    module_cdata.emulator.reset_counters()
    environment = Env(module_cdata, monkeypatch, tmp_path)
    environment.connection()
    return environment


def test_there_are_at_least_30_distinct_cases_across_every_layer() -> None:
    layers = {name.split(":")[0].split(" ")[0] for name in CASES}
    assert layers == {
        "create",
        "edit",
        "list",
        "delete",
        "clear",
        "account",
        "sensor",
        "trigger",
        "hook",
        "connection",
    }
    assert len(CASES) >= 30


def error_or_outcome(case: Bad, env: Env) -> tuple[CDataError | None, Any]:
    try:
        return None, case.act(env)
    except CDataError as error:
        return error, None


@pytest.mark.parametrize("name", CASES)
def test_bad_input_fails_naming_the_field_and_sends_nothing(env: Env, name: str) -> None:
    case = CASES[name]
    if case.connection is not None:
        env.connection(**case.connection)
    error, outcome = error_or_outcome(case, env)
    if error is not None:
        assert isinstance(error, CDataValidationError | CDataConfigError)
        assert error.field == case.field
        message = str(error)
    else:  # the trigger reports through its event instead
        assert isinstance(outcome, dict), f"no error for {name}: {outcome!r}"
        assert outcome["status"] == "error"
        message = outcome["message"]
    assert case.field.split("[")[0] in message, message
    assert env.cdata.emulator.counters.count() == 0, "nothing reached the API"
    assert env.cdata.emulator.counters.connections_accepted == 0
