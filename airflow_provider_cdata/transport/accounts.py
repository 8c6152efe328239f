"""The answers of the Account API and of List Data Sources, turned into values or a
:class:`~airflow_provider_cdata.exceptions.CDataAPIError`.

CData names the same fields differently in different answers: Create Account answers
``accountId``/``createdTime``, List and Get Account answer ``id``/``created``, and older pages have no
``accountName``. Every account leaves here in one shape, :data:`ACCOUNT_FIELDS`, missing values as
``None``. Answers are untrusted: a wrong type is an error keeping the status and the route, and the
messages name fields, never values (a value could be anything, even a token a proxy echoed).
"""

from __future__ import annotations

from typing import Any, Final

from airflow_provider_cdata.exceptions import CDataAPIError
from airflow_provider_cdata.transport.answers import json_body
from airflow_provider_cdata.transport.routes import Answer, Call

ACCOUNT_FIELDS: Final = ("id", "externalId", "accountName", "created")
# Each field of the one shape, and the names CData uses for it, the list answer's first.
_ALIASES: Final[dict[str, tuple[str, ...]]] = {
    "id": ("id", "accountId"),
    "externalId": ("externalId",),
    "accountName": ("accountName",),
    "created": ("created", "createdTime"),
}


def _bad(call: Call, answer: Answer, problem: str) -> CDataAPIError:
    return CDataAPIError(
        call.method, call.path, answer.status, f"answered {answer.status} {problem}", answer.attempts
    )


def normalise_account(call: Call, answer: Answer, raw: object) -> dict[str, Any]:
    """One account of any answer in the one shape; an error when it is not an object, has no id
    string, or a field is neither a string nor null."""
    if not isinstance(raw, dict):
        raise _bad(call, answer, "with an account that is not a JSON object")
    account: dict[str, Any] = {}
    for field, names in _ALIASES.items():
        value = next((raw[name] for name in names if raw.get(name) is not None), None)
        if value is not None and not isinstance(value, str):
            raise _bad(
                call, answer, f"with an account whose {field} is a {type(value).__name__}, not a string"
            )
        account[field] = value
    if not account["id"]:
        raise _bad(call, answer, "with an account without an id (id or accountId) string")
    return account


def decode_account(call: Call, answer: Answer) -> dict[str, Any]:
    """The account of a Create, Get or Update Account answer."""
    return normalise_account(call, answer, json_body(call, answer, "an account"))


def decode_accounts(call: Call, answer: Answer) -> list[dict[str, Any]]:
    """The accounts of a List Accounts answer: ``{"accounts": [...]}``."""
    body = json_body(call, answer, "an accounts list")
    accounts = body.get("accounts") if isinstance(body, dict) else None
    if not isinstance(accounts, list):
        raise _bad(call, answer, "without an accounts list in its JSON body")
    return [normalise_account(call, answer, raw) for raw in accounts]


def decode_data_sources(call: Call, answer: Answer) -> list[str]:
    """The names of a List Data Sources answer: ``{"dataSources": [{"dataSource": "Salesforce"}, ...]}``."""
    body = json_body(call, answer, "a dataSources list")
    sources = body.get("dataSources") if isinstance(body, dict) else None
    if not isinstance(sources, list):
        raise _bad(call, answer, "without a dataSources list in its JSON body")
    names: list[str] = []
    for source in sources:
        name = source.get("dataSource") if isinstance(source, dict) else None
        if not isinstance(name, str) or not name.strip():
            raise _bad(
                call, answer, "with a dataSources entry that is not an object with a dataSource string"
            )
        names.append(name)
    return names
