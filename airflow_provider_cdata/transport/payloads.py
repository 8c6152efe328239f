"""What each call sends: its JSON body and query parameters, built from arguments checked first.

Every value is validated here, before a URL, a header or a token exists, so bad input is an error
naming the argument and nothing is sent.
"""

from __future__ import annotations

from typing import Any, NoReturn
from urllib.parse import quote

from airflow_provider_cdata.validation import (
    coerce_bool,
    validate_name,
    validate_optional_name,
    validate_redirect_url,
)


def create_body(
    data_source: str | None,
    redirect_url: str | None,
    name: str | None,
    external_id: str | None,
    editable_name: object = None,
) -> dict[str, Any]:
    """Create Connection's body (CreateConnectionRequest): ``redirectURL``, and only what was given.

    No ``dataSource``: the connect URL opens CData's general page, where the customer picks the data
    source (CData then ignores ``name``). ``editableName`` false locks the name field to ``name``.
    """
    body: dict[str, Any] = {}
    if data_source is not None:
        body["dataSource"] = validate_name(data_source, "data_source")
    body["redirectURL"] = validate_redirect_url(redirect_url, "redirect_url")
    _name_fields(body, name, editable_name)
    if (checked_external_id := validate_optional_name(external_id, "external_id")) is not None:
        body["externalId"] = checked_external_id
    return body


def edit_body(redirect_url: str | None, name: str | None, editable_name: object = None) -> dict[str, Any]:
    """Edit Connection's body (EditConnectionRequest): ``redirectURL``, optional ``name`` and
    ``editableName``."""
    body: dict[str, Any] = {"redirectURL": validate_redirect_url(redirect_url, "redirect_url")}
    _name_fields(body, name, editable_name)
    return body


def _name_fields(body: dict[str, Any], name: str | None, editable_name: object) -> None:
    if (checked_name := validate_optional_name(name, "name")) is not None:
        body["name"] = checked_name
    if editable_name is not None:
        # A real bool, or its text (a Jinja-rendered operator argument): never a truthy "no".
        body["editableName"] = coerce_bool(editable_name, "editable_name")


def list_params(data_source: str | None, external_id: str | None) -> dict[str, str] | None:
    params: dict[str, str] = {}
    if (driver := validate_optional_name(data_source, "data_source")) is not None:
        params["driver"] = driver
    if (checked_external_id := validate_optional_name(external_id, "external_id")) is not None:
        params["externalId"] = checked_external_id
    return params or None


def account_external_id(value: object, field: str = "external_id") -> str:
    """An external id that can also be looked up: a valid name that stays one URL path segment.

    Get Account puts it in the path (percent-encoded); a ``/`` is decoded back by servers before
    routing, and ``.``/``..`` are dot segments clients and proxies remove, so those are refused for
    every account call: an account the hook creates can always be found by its external id.
    """
    checked = validate_name(value, field)
    if "/" in checked or "\\" in checked or checked.strip() in (".", ".."):
        _segment_problem(field, checked)
    return checked


def _segment_problem(field: str, value: str) -> NoReturn:
    from airflow_provider_cdata.exceptions import CDataValidationError

    shown = repr(value) if len(value) <= 60 else f"{value[:57]!r}..."
    raise CDataValidationError(
        field, f"{field} must not contain '/' or '\\' nor be '.' or '..' (it goes in a URL path), got {shown}"
    )


def account_ref(id_or_external_id: object) -> str:
    """Get Account's path segment: an account id or an external id, checked, percent-encoded."""
    checked = account_external_id(id_or_external_id, "id_or_external_id")
    return quote(checked, safe="")


def account_body(external_id: str | None, account_name: str | None) -> dict[str, Any]:
    """Create Account's (and Update Account's) body: only what was given (CData accepts ``{}``)."""
    body: dict[str, Any] = {}
    if external_id is not None:
        body["externalId"] = account_external_id(external_id)
    if (name := validate_optional_name(account_name, "account_name")) is not None:
        body["accountName"] = name
    return body


def update_account_body(external_id: str | None, account_name: str | None) -> dict[str, Any]:
    body = account_body(external_id, account_name)
    if not body:
        from airflow_provider_cdata.exceptions import CDataValidationError

        raise CDataValidationError(
            "external_id", "update_account needs external_id or account_name (or both): nothing to change"
        )
    return body
