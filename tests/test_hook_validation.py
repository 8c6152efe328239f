"""Bad input raises a CDataValidationError naming the field, before anything is sent."""

from __future__ import annotations

from typing import Any

import pytest

from airflow_provider_cdata.exceptions import CDataError, CDataValidationError
from airflow_provider_cdata.hooks import CDataHook
from airflow_provider_cdata.validation import (
    validate_name,
    validate_optional_name,
    validate_redirect_url,
    validate_uuid,
)
from tests.conftest import CData
from tests.test_hook_calls import Runner, runner_fixture, use_connection

run = runner_fixture()
UUID = "123e4567-e89b-12d3-a456-426614174000"
URL = "https://app.example.com/done"


# -- the validators ------------------------------------------------------------------------------------
def test_uuid_is_returned_canonical_lower_case() -> None:
    assert validate_uuid(UUID.upper(), "connection_id") == UUID


@pytest.mark.parametrize(
    "value",
    [
        "",
        "../x",
        "a/b",
        f"{UUID}/../metadata",
        f" {UUID}",
        f"{UUID}\n",
        f"{UUID[:8]}\x00{UUID[9:]}",
        UUID.replace("-", ""),  # uuid.UUID would accept these forms; a route must not
        "{" + UUID + "}",
        f"urn:uuid:{UUID}",
        "not-a-uuid",
    ],
)
def test_uuid_rejects_anything_but_the_canonical_form(value: str) -> None:
    with pytest.raises(CDataValidationError) as caught:
        validate_uuid(value, "connection_id")
    assert caught.value.field == "connection_id"
    assert str(caught.value).startswith("connection_id must be a UUID")


@pytest.mark.parametrize("value", [None, 123, b"bytes", ["list"]])
def test_uuid_rejects_non_strings_naming_the_type(value: object) -> None:
    with pytest.raises(
        CDataValidationError, match=f"account_id must be a UUID string, not {type(value).__name__}"
    ):
        validate_uuid(value, "account_id")


def test_validation_error_is_a_value_error_and_a_cdata_error() -> None:
    with pytest.raises(CDataValidationError) as caught:
        validate_uuid("x", "connection_id")
    assert isinstance(caught.value, ValueError)
    assert isinstance(caught.value, CDataError)


@pytest.mark.parametrize(
    "value", ["https://app.example.com/done?x=1#y", "http://localhost:8080/cb", "HTTPS://EXAMPLE.COM"]
)
def test_redirect_url_accepts_absolute_http_urls(value: str) -> None:
    assert validate_redirect_url(value) == value


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("javascript:alert(1)", "http:// or https:// URL, got 'javascript:'"),
        ("/relative/path", "got no scheme"),
        ("app.example.com/done", "got no scheme"),
        ("ftp://example.com/x", "got 'ftp:'"),
        ("https:///no-host", "with a host"),
        ("https://exa mple.com/", "spaces or control characters"),
        ("https://example.com/\r\nSet-Cookie: x", "spaces or control characters"),
        ("https://example.com/\x00", "spaces or control characters"),
        ("", "empty string"),
        ("https://[::1/", "not a valid URL"),
        ("https://example.com/" + "a" * 3000, "at most 2048 characters"),
    ],
)
def test_redirect_url_rejects_what_is_not_an_absolute_http_url(value: str, fragment: str) -> None:
    with pytest.raises(CDataValidationError) as caught:
        validate_redirect_url(value)
    assert caught.value.field == "redirect_url"
    assert str(caught.value).startswith("redirect_url ")
    assert fragment in str(caught.value)


def test_redirect_url_rejects_non_strings() -> None:
    with pytest.raises(CDataValidationError, match="redirect_url must be an absolute http"):
        validate_redirect_url(42)


def test_name_accepts_ordinary_text() -> None:
    assert validate_name("Sales CRM (EU) / ünïcode", "name") == "Sales CRM (EU) / ünïcode"


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("", "must not be empty"),
        ("   ", "must not be empty"),
        ("a\nb", "control characters"),
        ("tab\there", "control characters"),
        ("zero\u200bwidth", "control characters"),
        ("x" * 256, "at most 255 characters"),
        (7, "must be a string, not int"),
    ],
)
def test_name_rejections_name_the_field(value: object, fragment: str) -> None:
    with pytest.raises(CDataValidationError) as caught:
        validate_name(value, "data_source")
    assert caught.value.field == "data_source"
    assert str(caught.value).startswith("data_source ")
    assert fragment in str(caught.value)


def test_optional_name_allows_none_only() -> None:
    assert validate_optional_name(None, "name") is None
    assert validate_optional_name("x", "name") == "x"
    with pytest.raises(CDataValidationError, match="name must not be empty"):
        validate_optional_name("", "name")


# -- the hook sends nothing for bad input --------------------------------------------------------------
BAD_CALLS: list[tuple[str, dict[str, Any], str]] = [
    ("create_connection", {"data_source": "", "redirect_url": URL}, "data_source"),
    ("create_connection", {"data_source": 5, "redirect_url": URL}, "data_source"),
    (
        "create_connection",
        {"data_source": "Salesforce", "redirect_url": "javascript:alert(1)"},
        "redirect_url",
    ),
    ("create_connection", {"data_source": "Salesforce", "redirect_url": "/done"}, "redirect_url"),
    ("create_connection", {"data_source": "Salesforce", "redirect_url": URL, "name": "a\x00b"}, "name"),
    (
        "create_connection",
        {"data_source": "Salesforce", "redirect_url": URL, "external_id": ""},
        "external_id",
    ),
    (
        "create_connection",
        {"data_source": "Salesforce", "redirect_url": URL, "account_id": "../x"},
        "account_id",
    ),
    ("edit_connection", {"connection_id": "../x", "redirect_url": URL}, "connection_id"),
    ("edit_connection", {"connection_id": UUID, "redirect_url": "ftp://x"}, "redirect_url"),
    ("edit_connection", {"connection_id": UUID, "redirect_url": URL, "account_id": "a/b"}, "account_id"),
    ("list_connections", {"account_id": "not-a-uuid"}, "account_id"),
    ("list_connections", {"data_source": ""}, "data_source"),
    ("list_connections", {"external_id": "x\ny"}, "external_id"),
    ("delete_connection", {"connection_id": "a/b"}, "connection_id"),
    ("delete_connection", {"connection_id": ""}, "connection_id"),
    ("delete_connection", {"connection_id": UUID, "account_id": 5}, "account_id"),
    ("clear_metadata", {"connection_id": f"{UUID}/../../x"}, "connection_id"),
    ("clear_metadata", {"connection_id": None}, "connection_id"),
]


@pytest.mark.parametrize(("method", "kwargs", "field"), BAD_CALLS)
def test_bad_arguments_raise_before_any_request(
    cdata_hook_env: CDataHook, cdata: CData, run: Runner, method: str, kwargs: dict[str, Any], field: str
) -> None:
    with pytest.raises(CDataValidationError) as caught:
        run(cdata_hook_env, method, **kwargs)
    assert caught.value.field == field
    assert field in str(caught.value)
    assert cdata.emulator.counters.count() == 0, "nothing may reach the API"
    assert cdata.emulator.counters.connections_accepted == 0


def test_hook_refuses_a_bad_account_id_when_built() -> None:
    with pytest.raises(CDataValidationError) as caught:
        CDataHook(account_id="../other")
    assert caught.value.field == "account_id"


def test_hook_refuses_a_blank_connection_id() -> None:
    with pytest.raises(CDataValidationError) as caught:
        CDataHook(cdata_conn_id="")
    assert caught.value.field == "cdata_conn_id"


def test_no_account_anywhere_names_account_id_and_sends_nothing(
    cdata: CData, monkeypatch: pytest.MonkeyPatch, run: Runner
) -> None:
    use_connection(monkeypatch, cdata, account_id=None)
    with pytest.raises(CDataValidationError, match="account_id is needed") as caught:
        run(CDataHook(), "list_connections")
    assert caught.value.field == "account_id"
    assert cdata.emulator.counters.count() == 0
