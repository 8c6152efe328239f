"""What each call sends: its JSON body and query parameters, built from arguments checked first.

Every value is validated here, before a URL, a header or a token exists, so bad input is an error
naming the argument and nothing is sent.
"""

from __future__ import annotations

from typing import Any

from airflow_provider_cdata.validation import validate_name, validate_optional_name, validate_redirect_url


def create_body(
    data_source: str, redirect_url: str, name: str | None, external_id: str | None
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "dataSource": validate_name(data_source, "data_source"),
        "redirectURL": validate_redirect_url(redirect_url, "redirect_url"),
    }
    if (checked_name := validate_optional_name(name, "name")) is not None:
        body["name"] = checked_name
    if (checked_external_id := validate_optional_name(external_id, "external_id")) is not None:
        body["externalId"] = checked_external_id
    return body


def list_params(data_source: str | None, external_id: str | None) -> dict[str, str] | None:
    params: dict[str, str] = {}
    if (driver := validate_optional_name(data_source, "data_source")) is not None:
        params["driver"] = driver
    if (checked_external_id := validate_optional_name(external_id, "external_id")) is not None:
        params["externalId"] = checked_external_id
    return params or None
