"""CDataHook's child-account and data-source calls (issue 11) against the emulator over real HTTP.

Every test runs twice, through the sync methods (requests) and the async twins (aiohttp), with the
``run`` fixture of tests/test_hook_calls.py.
"""

from __future__ import annotations

import json
from typing import Any

import jwt
import pytest

from airflow_provider_cdata.emulator.state import DATA_SOURCES
from airflow_provider_cdata.exceptions import CDataAPIError, CDataValidationError
from airflow_provider_cdata.hooks import CDataHook
from tests.conftest import CData, cdata_connection
from tests.test_hook_calls import Runner, runner_fixture, use_connection

pytestmark = pytest.mark.usefixtures("fast_retries")
run = runner_fixture()

UNKNOWN_ID = "123e4567-e89b-12d3-a456-426614174000"
SHAPE = {"id", "externalId", "accountName", "created"}


def parent_hook(monkeypatch: pytest.MonkeyPatch, cdata: CData) -> CDataHook:
    """A hook on a connection with no child account at all: account calls must not need one."""
    connection = {**cdata_connection(cdata), "extra": {}}
    monkeypatch.setenv("AIRFLOW_CONN_CDATA_DEFAULT", json.dumps(connection))
    return CDataHook()


@pytest.fixture
def hook(monkeypatch: pytest.MonkeyPatch, cdata: CData) -> CDataHook:
    use_connection(monkeypatch, cdata)
    return CDataHook()


# -- the calls -------------------------------------------------------------------------------------
def test_create_account_answers_the_one_shape(cdata: CData, hook: CDataHook, run: Runner) -> None:
    made = run(hook, "create_account", external_id="acme", account_name="Acme Inc")
    assert set(made) == SHAPE
    stored = cdata.emulator.store.find_account(cdata.parent_id, "acme")
    assert stored is not None
    # The create answer's accountId/createdTime renamed; it has no accountName (CData's create answer
    # carries none), so the hook says None rather than guess.
    assert made == {**{k: stored[k] for k in SHAPE}, "accountName": None}
    (record,) = cdata.emulator.requests("account_create")
    assert (record.method, record.path) == ("POST", "/api/poweredby/account/create")
    assert record.body == {"externalId": "acme", "accountName": "Acme Inc"}


def test_create_account_with_nothing_sends_an_empty_body(cdata: CData, hook: CDataHook, run: Runner) -> None:
    made = run(hook, "create_account")
    assert made["id"]
    assert made["created"]
    assert (made["externalId"], made["accountName"]) == (None, None)
    assert cdata.emulator.requests("account_create")[0].body == {}


def test_list_accounts_answers_the_one_shape_for_every_account(
    cdata: CData, hook: CDataHook, run: Runner
) -> None:
    made = run(hook, "create_account", external_id="acme")
    listed = run(hook, "list_accounts")
    assert all(set(account) == SHAPE for account in listed)
    by_id = {account["id"]: account for account in listed}
    assert set(by_id) == {cdata.account_id, made["id"]}
    assert by_id[made["id"]] == made  # the same account, whichever answer (and names) it came from
    assert by_id[cdata.account_id]["externalId"] == "customer-1"


def test_get_account_by_id_or_external_id_and_none_when_unknown(
    cdata: CData, hook: CDataHook, run: Runner
) -> None:
    made = run(hook, "create_account", external_id="tenant 42?#%", account_name="Odd")
    made["accountName"] = "Odd"  # Get answers it; Create does not
    assert run(hook, "get_account", made["id"]) == made
    assert run(hook, "get_account", "tenant 42?#%") == made  # percent-encoded into one path segment
    # Arrived as one path segment, decoded by the server: not cut at '?' or '#'.
    assert cdata.emulator.requests("account_get")[-1].path == "/api/poweredby/account/tenant 42?#%"
    assert run(hook, "get_account", "customer-1")["id"] == cdata.account_id
    assert run(hook, "get_account", UNKNOWN_ID) is None
    assert run(hook, "get_account", "nobody") is None
    assert cdata.emulator.requests("account_get")[-1].status == 404


def test_update_account_changes_only_what_is_given(cdata: CData, hook: CDataHook, run: Runner) -> None:
    made = run(hook, "create_account", external_id="acme", account_name="Acme")
    renamed = run(hook, "update_account", made["id"], account_name="Acme Ltd")  # answers the whole account
    assert renamed == {**made, "accountName": "Acme Ltd"}
    moved = run(hook, "update_account", made["id"].upper(), external_id="acme-2")
    assert moved == {**renamed, "externalId": "acme-2"}
    (first, second) = cdata.emulator.requests("account_update")
    assert (first.method, first.path) == ("PUT", f"/api/poweredby/account/update/{made['id']}")
    assert (first.body, second.body) == ({"accountName": "Acme Ltd"}, {"externalId": "acme-2"})
    with pytest.raises(CDataAPIError) as raised:
        run(hook, "update_account", UNKNOWN_ID, account_name="x")
    assert raised.value.status_code == 404


def test_delete_account_deletes_it(cdata: CData, hook: CDataHook, run: Runner) -> None:
    made = run(hook, "create_account", external_id="leaving")
    assert run(hook, "delete_account", made["id"]) is None
    assert cdata.emulator.store.find_account(cdata.parent_id, "leaving") is None
    (record,) = cdata.emulator.requests("account_delete")
    assert (record.method, record.path) == ("DELETE", f"/api/poweredby/account/delete/{made['id']}")


def test_delete_account_is_idempotent_when_an_answer_is_lost(
    cdata: CData, hook: CDataHook, run: Runner
) -> None:
    made = run(hook, "create_account", external_id="leaving")
    # The first delete is carried out and its answer cut short; the retry finds nothing: done.
    cdata.emulator.inject("truncated", route="account_delete", times=1)
    assert run(hook, "delete_account", made["id"]) is None
    assert [r.status for r in cdata.emulator.requests("account_delete")] == [200, 404]
    assert cdata.emulator.store.find_account(cdata.parent_id, "leaving") is None


def test_delete_account_of_an_unknown_id_raises_404(hook: CDataHook, run: Runner) -> None:
    with pytest.raises(CDataAPIError) as raised:
        run(hook, "delete_account", UNKNOWN_ID)
    assert raised.value.status_code == 404
    assert raised.value.route == f"/poweredby/account/delete/{UNKNOWN_ID}"


def test_a_duplicate_external_id_is_a_409_with_cdata_s_message(hook: CDataHook, run: Runner) -> None:
    run(hook, "create_account", external_id="acme")
    with pytest.raises(CDataAPIError) as raised:
        run(hook, "create_account", external_id="acme")
    error = raised.value
    assert (error.status_code, error.method, error.route) == (409, "POST", "/poweredby/account/create")
    assert "already exists" in error.message


def test_list_data_sources_answers_the_names(cdata: CData, hook: CDataHook, run: Runner) -> None:
    assert run(hook, "list_data_sources") == list(DATA_SOURCES)
    (record,) = cdata.emulator.requests("sources")
    assert (record.method, record.path) == ("GET", "/api/poweredby/sources/list")


# -- the parent-level token --------------------------------------------------------------------------
ACCOUNT_CALLS: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = [
    ("create_account", (), {"external_id": "t-1"}),
    ("list_accounts", (), {}),
    ("get_account", ("t-1",), {}),
    ("list_data_sources", (), {}),
]


def test_account_calls_carry_one_cached_parent_token_without_sub(
    monkeypatch: pytest.MonkeyPatch, cdata: CData, run: Runner
) -> None:
    hook = parent_hook(monkeypatch, cdata)  # no account_id anywhere: none is needed
    made, *_ = [run(hook, method, *args, **kwargs) for method, args, kwargs in ACCOUNT_CALLS]
    run(hook, "update_account", made["id"], account_name="T")
    run(hook, "delete_account", made["id"])
    assert hook.tokens_minted == 1, "one parent token, reused by every account call"
    sent = {json.dumps(r.claims, sort_keys=True) for r in cdata.emulator.requests() if r.claims}
    (claims,) = [json.loads(text) for text in sent]
    assert "sub" not in claims
    assert (claims["iss"], claims["tokenType"]) == (cdata.parent_id, "powered-by")
    assert len(cdata.emulator.requests()) == len(ACCOUNT_CALLS) + 2


def test_the_parent_token_is_cached_beside_the_child_tokens(
    cdata: CData, hook: CDataHook, run: Runner
) -> None:
    run(hook, "list_accounts")
    run(hook, "list_connections")
    run(hook, "list_data_sources")
    run(hook, "list_connections")
    assert hook.tokens_minted == 2  # one parent token, one child token, each reused
    subs = [r.claims.get("sub") for r in cdata.emulator.requests() if r.claims]
    assert subs == [None, cdata.account_id, None, cdata.account_id]


def test_an_account_call_needs_no_account_id_but_a_connection_call_still_does(
    monkeypatch: pytest.MonkeyPatch, cdata: CData, run: Runner
) -> None:
    hook = parent_hook(monkeypatch, cdata)
    assert run(hook, "list_accounts")
    with pytest.raises(CDataValidationError) as raised:
        run(hook, "list_connections")
    assert raised.value.field == "account_id"


def test_the_emulator_refuses_a_sub_less_token_for_connection_calls(cdata: CData) -> None:
    import requests

    token = cdata.token(sub=None)
    answer = requests.get(
        f"{cdata.base_url}/poweredby/connection/list",
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    assert answer.status_code == 403
    assert "sub" in answer.json()["error"]["message"]
    assert "sub" not in jwt.decode(token, options={"verify_signature": False})


# -- faults ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("status", [503, 429])
@pytest.mark.parametrize(
    ("route", "method", "args"),
    [
        ("account_create", "create_account", ("tenant-r",)),
        ("account_list", "list_accounts", ()),
        ("account_get", "get_account", ("customer-1",)),
        ("sources", "list_data_sources", ()),
    ],
)
def test_account_calls_are_retried_after_503_and_429(
    cdata: CData, hook: CDataHook, run: Runner, status: int, route: str, method: str, args: tuple[str]
) -> None:
    cdata.emulator.inject("status", route=route, status=status, times=2)
    assert run(hook, method, *args) is not None
    assert [r.status for r in cdata.emulator.requests(route)] == [status, status, 200]


def test_create_without_external_id_is_not_sent_twice_once_it_may_have_been_carried_out(
    cdata: CData, hook: CDataHook, run: Runner
) -> None:
    # A 503 may come from a gateway that passed the create on: a second one could make a second account,
    # with no external id to find either by.
    cdata.emulator.inject("status", route="account_create", status=503, times=1)
    with pytest.raises(CDataAPIError) as raised:
        run(hook, "create_account", account_name="No tenant id")
    assert raised.value.status_code == 503
    assert "not retried" in raised.value.message
    assert len(cdata.emulator.requests("account_create")) == 1
    # A lost answer, the same.
    cdata.emulator.inject("truncated", route="account_create", times=1)
    with pytest.raises(CDataAPIError) as lost:
        run(hook, "create_account")
    assert (lost.value.status_code, "not retried" in lost.value.message) == (None, True)
    assert len(cdata.emulator.store.list_accounts(cdata.parent_id)) == 2, "one made, never two"
    # A 429 was not carried out: retried.
    cdata.emulator.inject("status", route="account_create", status=429, times=1)
    assert run(hook, "create_account")["id"]


def test_create_with_external_id_retried_after_a_lost_answer_surfaces_the_409(
    cdata: CData, hook: CDataHook, run: Runner
) -> None:
    # The first create is carried out, its answer lost; the retry finds the external id taken: the 409
    # the operator layer turns into a look-up. Exactly one account either way.
    cdata.emulator.inject("truncated", route="account_create", times=1)
    with pytest.raises(CDataAPIError) as raised:
        run(hook, "create_account", external_id="acme")
    assert (raised.value.status_code, raised.value.attempts) == (409, 2)
    assert [a["externalId"] for a in run(hook, "list_accounts")].count("acme") == 1


def test_update_and_delete_are_retried_after_503(cdata: CData, hook: CDataHook, run: Runner) -> None:
    cdata.emulator.inject("status", route="account_update", status=503, times=1)
    cdata.emulator.inject("status", route="account_delete", status=503, times=1)
    assert run(hook, "update_account", cdata.account_id, account_name="New")["accountName"] == "New"
    assert run(hook, "delete_account", cdata.account_id) is None
    assert [r.status for r in cdata.emulator.requests("account_update")] == [503, 200]
    assert [r.status for r in cdata.emulator.requests("account_delete")] == [503, 200]


# -- bad input: an error naming the field, and nothing sent ------------------------------------------
BAD_INPUT: dict[str, tuple[str, str, tuple[Any, ...], dict[str, Any]]] = {
    "create: empty external_id": ("external_id", "create_account", (), {"external_id": ""}),
    "create: external_id an int": ("external_id", "create_account", (), {"external_id": 7}),
    "create: external_id with /": ("external_id", "create_account", (), {"external_id": "a/b"}),
    "create: external_id ..": ("external_id", "create_account", (), {"external_id": ".."}),
    "create: blank account_name": ("account_name", "create_account", (), {"account_name": "  "}),
    "create: account_name too long": ("account_name", "create_account", (), {"account_name": "x" * 256}),
    "get: empty": ("id_or_external_id", "get_account", ("",), {}),
    "get: ../": ("id_or_external_id", "get_account", ("../connection/list",), {}),
    "get: None": ("id_or_external_id", "get_account", (None,), {}),
    "get: control characters": ("id_or_external_id", "get_account", ("a\nb",), {}),
    "update: account_id not a UUID": ("account_id", "update_account", ("acme",), {"account_name": "x"}),
    "update: nothing to change": ("external_id", "update_account", (UNKNOWN_ID,), {}),
    "update: empty account_name": ("account_name", "update_account", (UNKNOWN_ID,), {"account_name": ""}),
    "delete: account_id with ../": ("account_id", "delete_account", ("../../x",), {}),
    "delete: account_id None": ("account_id", "delete_account", (None,), {}),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUT))
def test_bad_input_names_the_field_and_sends_nothing(
    cdata: CData, hook: CDataHook, run: Runner, case: str
) -> None:
    field, method, args, kwargs = BAD_INPUT[case]
    with pytest.raises(CDataValidationError) as raised:
        run(hook, method, *args, **kwargs)
    assert raised.value.field == field
    assert field in str(raised.value)
    assert cdata.emulator.requests() == []
    assert hook.tokens_minted == 0
