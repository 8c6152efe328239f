"""One set of text-to-value rules (validation.coerce_bool / coerce_int / is_unset), the same for the
connection's extras and for the operators' templated arguments."""

from __future__ import annotations

import json
from typing import Any

import pytest
from airflow.sdk import Connection

from airflow_provider_cdata.exceptions import CDataConfigError, CDataError, CDataValidationError
from airflow_provider_cdata.validation import coerce_bool, coerce_int, coerce_optional_int, is_unset
from tests.conftest import CData

ID = "123e4567-e89b-12d3-a456-426614174000"
TRUE = [True, 1, "true", "True", "TRUE", " true ", "yes", "Yes", "on", "ON", "1"]
FALSE = [False, 0, "false", "False", " FALSE", "no", "No", "off", "Off", "0"]
NOT_BOOL = ["maybe", "t", "y", "2", 2, -1, 1.0, 0.0, [], ["true"], {}, "truE!", "None", None, ""]
UNSET = [None, "", "   ", "None"]


@pytest.mark.parametrize("value", TRUE)
def test_true_spellings(value: object) -> None:
    assert coerce_bool(value, "flag") is True


@pytest.mark.parametrize("value", FALSE)
def test_false_spellings(value: object) -> None:
    assert coerce_bool(value, "flag") is False


@pytest.mark.parametrize("value", NOT_BOOL, ids=repr)
def test_anything_else_is_not_a_bool_and_the_error_names_the_field(value: object) -> None:
    with pytest.raises(CDataValidationError, match="flag must be true or false, got") as caught:
        coerce_bool(value, "flag")
    assert caught.value.field == "flag"


@pytest.mark.parametrize(
    ("value", "number"), [(5, 5), ("5", 5), (" 5 ", 5), ("+5", 5), (5.0, 5), (0, 0), ("0", 0), ("007", 7)]
)
def test_integer_spellings(value: object, number: int) -> None:
    assert coerce_int(value, "count") == number


@pytest.mark.parametrize(
    "value", ["5.0", "5.5", 5.5, "five", "", " ", "²", "٣", "1e3", True, False, None, []], ids=repr
)
def test_anything_else_is_not_an_integer(value: object) -> None:
    with pytest.raises(CDataValidationError, match="count must be a non-negative integer, got") as caught:
        coerce_int(value, "count")
    assert caught.value.field == "count"


def test_integer_bounds_are_inclusive_and_named_in_the_message() -> None:
    assert coerce_int("30", "lifetime", 30, 3600) == 30
    assert coerce_int(3600, "lifetime", 30, 3600) == 3600
    for outside in (29, "3601", -1):
        with pytest.raises(
            CDataValidationError, match="lifetime must be a positive integer between 30 and 3600"
        ):
            coerce_int(outside, "lifetime", 30, 3600)
    with pytest.raises(CDataValidationError, match="count must be a non-negative integer, got -1"):
        coerce_int(-1, "count")


@pytest.mark.parametrize("value", UNSET, ids=repr)
def test_unset_values(value: object) -> None:
    assert is_unset(value)
    assert coerce_optional_int(value, "count") is None


@pytest.mark.parametrize("value", [0, "0", False, "none", "null", [], "x"], ids=repr)
def test_values_that_are_set(value: object) -> None:
    assert not is_unset(value)


# -- the same rules in the connection's extras and in the operators -----------------------------------
def extras(host: str | None = None, **extra: Any) -> Any:
    from airflow_provider_cdata.connection import settings_from_connection

    conn = Connection(conn_id="rules", conn_type="cdata", host=host, login="parent", extra=json.dumps(extra))
    return settings_from_connection(conn)


@pytest.mark.parametrize("value", TRUE + FALSE, ids=repr)
def test_the_extras_take_the_same_bool_spellings(value: object) -> None:
    if value in TRUE:
        assert extras("http://cdata.internal", allow_insecure_http=value).allow_insecure_http is True
    else:
        with pytest.raises(CDataConfigError, match="plain http://"):
            extras("http://cdata.internal", allow_insecure_http=value)


@pytest.mark.parametrize("value", [v for v in NOT_BOOL if not is_unset(v)], ids=repr)
def test_the_extras_refuse_the_same_non_bools(value: object) -> None:
    with pytest.raises(
        CDataConfigError, match="Airflow connection 'rules': extra allow_insecure_http must be"
    ):
        extras(allow_insecure_http=value)


@pytest.mark.parametrize("value", UNSET, ids=repr)
def test_an_unset_extra_takes_its_default(value: object) -> None:
    got = extras(allow_insecure_http=value, token_lifetime=value, max_retries=value, timeout=value)
    assert (got.allow_insecure_http, got.token_lifetime, got.max_retries, got.timeout) == (
        False,
        300,
        5,
        30.0,
    )


@pytest.mark.parametrize(("value", "number"), [("7", 7), (" 7 ", 7), ("+7", 7), (7.0, 7)])
def test_the_extras_take_the_same_integer_spellings(value: object, number: int) -> None:
    assert extras(max_retries=value).max_retries == number


def _delete(**kwargs: Any) -> Any:
    from airflow_provider_cdata.operators import DeleteConnectionOperator

    return DeleteConnectionOperator(task_id="delete", connection_id=ID, **kwargs)


@pytest.mark.parametrize("value", TRUE, ids=repr)
def test_dry_run_takes_every_true_spelling(value: object) -> None:
    assert _delete(dry_run=value).execute({}) == [], "a dry run deletes nothing and calls nothing"


@pytest.mark.parametrize("value", FALSE, ids=repr)
def test_dry_run_takes_every_false_spelling(value: object, airflow_conn: CData) -> None:
    assert _delete(dry_run=value).execute({}) == [ID]
    assert airflow_conn.emulator.counters.count("delete", 200) == 1


@pytest.mark.parametrize("value", [v for v in NOT_BOOL if v is not None], ids=repr)
def test_dry_run_refuses_the_same_non_bools(value: object) -> None:
    with pytest.raises(CDataValidationError, match="dry_run must be true or false") as caught:
        _delete(dry_run=value).execute({})
    assert caught.value.field == "dry_run"


@pytest.mark.parametrize(
    ("value", "refused"), [("0", True), (" 0 ", True), (0.0, True), ("1", False), ("None", False)]
)
def test_max_deletions_takes_the_same_integer_spellings(value: object, refused: bool) -> None:
    operator = _delete(dry_run=True, max_deletions=value)
    if refused:
        with pytest.raises(CDataError, match="more than max_deletions=0"):
            operator.execute({})
    else:
        assert operator.execute({}) == []


@pytest.mark.parametrize("value", ["-3", "²", "1.5", 1.5, True], ids=repr)
def test_max_deletions_refuses_what_is_not_a_count(value: object) -> None:
    with pytest.raises(CDataValidationError, match="max_deletions must be a non-negative integer") as caught:
        _delete(dry_run=True, max_deletions=value).execute({})
    assert caught.value.field == "max_deletions"
