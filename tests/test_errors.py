"""The provider's errors are whole when made, fixed afterwards, and the same after pickling."""

from __future__ import annotations

import copy
import json
import pickle
from typing import Any

import pytest

from airflow_provider_cdata.exceptions import (
    CDataAPIError,
    CDataConfigError,
    CDataError,
    CDataValidationError,
)
from tests.conftest import CData, cdata_connection
from tests.test_hook_calls import Runner, runner_fixture

run = runner_fixture()

VALIDATION = CDataValidationError("connection_id", "connection_id must be a UUID")
CONFIG = CDataConfigError("host", "Airflow connection 'x': host is not a valid URL")
API_HTTP = CDataAPIError("GET", "/poweredby/connection/list", 503, "busy", 3, retry_after=2.5)
API_TLS = CDataAPIError("GET", "/poweredby/connection/list", None, "TLS failure: x", retryable=False)
ERRORS: dict[str, CDataError] = {
    "validation": VALIDATION,
    "config": CONFIG,
    "config without a field": CDataConfigError(None, "Airflow connection 'x': broken"),
    "api, HTTP": API_HTTP,
    "api, TLS": API_TLS,
    "api, 400 made retryable": CDataAPIError("POST", "/x", 400, "odd", retryable=True),
}


def round_trip(error: CDataError) -> Any:
    return pickle.loads(pickle.dumps(error))  # noqa: S301 - bytes this test just made


def attributes(error: Exception) -> dict[str, Any]:
    return {"type": type(error), "str": str(error), "args": error.args, **vars(error)}


@pytest.mark.parametrize("error", ERRORS.values(), ids=ERRORS.keys())
def test_pickling_and_copying_keep_every_attribute(error: CDataError) -> None:
    for again in (round_trip(error), copy.copy(error), copy.deepcopy(error)):
        assert attributes(again) == attributes(error)


def test_an_unpickled_tls_error_still_says_it_cannot_be_retried() -> None:
    again = round_trip(API_TLS)
    assert isinstance(again, CDataAPIError)
    assert again.retryable is False


@pytest.mark.parametrize("error", ERRORS.values(), ids=ERRORS.keys())
def test_airflows_own_serialization_rebuilds_the_same_error(error: CDataError) -> None:
    classpath, args, kwargs = error.serialize()
    assert classpath == f"{type(error).__module__}.{type(error).__name__}"
    json.dumps(args)  # plain values only
    assert attributes(type(error)(*args, **kwargs)) == attributes(error)


def test_a_plain_cdata_error_pickles_as_any_exception() -> None:
    error = CDataError("something went wrong")
    again = round_trip(error)
    assert (type(again), again.args) == (CDataError, ("something went wrong",))
    assert error.serialize() == (
        "airflow_provider_cdata.exceptions.CDataError",
        ("something went wrong",),
        {},
    )


@pytest.mark.parametrize(
    ("error", "name"),
    [
        (API_HTTP, "retry_after"),
        (API_TLS, "retryable"),
        (API_HTTP, "status_code"),
        (VALIDATION, "field"),
        (CONFIG, "message"),
    ],
)
def test_what_an_error_says_cannot_be_changed_after_it_is_made(error: CDataError, name: str) -> None:
    before = getattr(error, name)
    with pytest.raises(AttributeError, match=f"{name} is set when the error is made"):
        setattr(error, name, 123)
    assert getattr(error, name) == before
    error.add_note("notes and tracebacks are still Python's to add")


def test_the_three_errors_take_what_failed_first_then_the_message() -> None:
    assert (VALIDATION.field, VALIDATION.message) == (
        "connection_id",
        "connection_id must be a UUID",
    )
    assert (CONFIG.field, CONFIG.message) == (
        "host",
        "Airflow connection 'x': host is not a valid URL",
    )
    api = API_HTTP
    assert (api.method, api.route, api.status_code, api.message, api.attempts) == (
        "GET",
        "/poweredby/connection/list",
        503,
        "busy",
        3,
    )


@pytest.mark.parametrize(
    ("status", "retryable"), [(None, True), (429, True), (500, True), (503, True), (400, False), (404, False)]
)
def test_retryable_defaults_to_what_the_status_says(status: int | None, retryable: bool) -> None:
    assert CDataAPIError("GET", "/x", status, "m").retryable is retryable


def test_a_retry_after_header_reaches_the_error(
    cdata: CData, monkeypatch: pytest.MonkeyPatch, run: Runner
) -> None:
    from airflow_provider_cdata.hooks import CDataHook

    monkeypatch.setenv("AIRFLOW_CONN_CDATA_DEFAULT", json.dumps(cdata_connection(cdata, max_retries=0)))
    cdata.emulator.inject("status", route="list", status=429, retry_after=4, times=1)
    with pytest.raises(CDataAPIError) as caught:
        run(CDataHook(), "list_connections")
    assert (caught.value.status_code, caught.value.retry_after) == (429, 4.0)
    assert round_trip(caught.value).retry_after == 4.0
