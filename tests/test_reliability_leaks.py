"""Leak scan: every operator and the sensor in every mode, run by Airflow (dag.test()) with DEBUG logging,
successes, retries and failures. Collected: every line Airflow printed (task logs, the triggerer's
lines), every stdlib record of the provider, urllib3, httpx and httpcore, and every rendered template
field stored for every task. Searched for: each line of the private key's PEM body (and any 20
characters in a row of it), every JWT the hook minted (captured as it was signed) and every
connect-URL token, whole and by their signature segment (Airflow 3.3 rewrites anything starting with
``eyJ`` to ``eyJ***`` in its own log lines, so the signature is what could slip through).

dag.test() runs every task in this one process, so the secrets masker would know a token another task
registered. Each task here starts with an empty masker (and the hook's masker budget reset), as a task
in its own worker process does.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, cast
from unittest import mock
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.conftest import CData
from tests.dag_runner import DagResult, run_dag
from tests.test_example_dags import customer_once_the_trigger_polls
from tests.test_hook_logging import JWT_SHAPE, key_lines, windows
from tests.test_sensor import customer_after_polls

UNKNOWN_ID = "0b5f7d5c-3e1a-4c55-9a66-2f3b1e7c9d10"
STDLIB_LOGGERS = ("airflow_provider_cdata", "urllib3", "httpx", "httpcore")


@dataclass
class Secrets:
    """Everything that must never be seen, gathered while the DAGs run."""

    minted: list[str] = field(default_factory=list)
    connect_urls: list[str] = field(default_factory=list)

    def tokens(self) -> list[str]:
        connect = [t for url in self.connect_urls for t in parse_qs(urlsplit(url).query).get("token", [])]
        return [*self.minted, *connect]


def record_minted_tokens(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Wrap the hook's token signing: every JWT it mints is appended to the returned list."""
    from airflow_provider_cdata import auth

    minted: list[str] = []
    mint = auth.TokenMinter._mint

    def recording_mint(self: auth.TokenMinter, account_id: str, now: float) -> str:
        minted.append(mint(self, account_id, now))
        return minted[-1]

    monkeypatch.setattr(auth.TokenMinter, "_mint", recording_mint)
    return minted


def fresh_masker_per_task(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each task renders its templates with an empty secrets masker, as in its own process."""
    from airflow.sdk._shared.secrets_masker import _secrets_masker
    from airflow.sdk.execution_time.task_runner import RuntimeTaskInstance

    from airflow_provider_cdata.hooks import token_mask_budget

    render = RuntimeTaskInstance.render_templates

    def render_in_a_fresh_process(self: Any, *args: Any, **kwargs: Any) -> Any:
        cast(Any, _secrets_masker()).reset_masker()  # Airflow leaves it unannotated
        token_mask_budget.reset()
        return render(self, *args, **kwargs)

    monkeypatch.setattr(RuntimeTaskInstance, "render_templates", render_in_a_fresh_process)


# -- the runs: every operator, the sensor in each mode, retries and failures ---------------------------
Scenario = Callable[[CData, Secrets], list[DagResult]]


def create_and_edit(cdata: CData, secrets: Secrets) -> list[DagResult]:
    created = run_dag(
        "cdata_test_create", {"data_source": "Salesforce", "name": "Acme", "external_id": "acme-1"}
    )
    connection = cdata.emulator.add_connection(cdata.account_id)
    edited = run_dag("cdata_test_edit", {"connection_id": connection["id"]})
    missing = run_dag("cdata_test_edit", {"connection_id": UNKNOWN_ID})  # a 404, logged as a failure
    secrets.connect_urls += [created.xcom("create"), edited.xcom("edit")]
    assert (created.state, edited.state, missing.state) == ("success", "success", "failed")
    return [created, edited, missing]


def list_delete_and_clear(cdata: CData, secrets: Secrets) -> list[DagResult]:
    ids = [cdata.emulator.add_connection(cdata.account_id)["id"] for _ in range(3)]
    cdata.emulator.inject("status", status=503, route="list", times=1)  # a retry, logged as a warning
    cdata.emulator.inject("drop", route="clear_metadata", times=1)
    runs = [
        run_dag("cdata_test_list"),
        run_dag("cdata_test_clear"),
        run_dag("cdata_test_delete", {"ids": ids[:1]}),
        run_dag("cdata_test_delete_dry_run", {"ids": ids[1:]}),
        run_dag("cdata_test_list_then_delete", {"modified_before": "2999-01-01T00:00:00Z"}),
    ]
    assert [r.state for r in runs] == ["success"] * len(runs)
    return runs


def sensor_in(mode: str) -> Scenario:
    def waits(cdata: CData, secrets: Secrets) -> list[DagResult]:
        with customer_after_polls(cdata, 2, body={"externalId": f"leak-{mode}"}) as outcome:
            result = run_dag(f"cdata_test_sensor_{mode}", {"external_id": f"leak-{mode}"})
        assert result.state == "success"
        assert result.xcom("wait")["id"] == outcome["cdata_connection_id"]
        return [result]

    return waits


def onboarding_example(cdata: CData, secrets: Secrets) -> list[DagResult]:
    """The example DAG users copy: its hand-off task logs the link it reads from XCom."""
    with (
        mock.patch.dict(os.environ, {"CDATA_ONBOARDING_POKE_SECONDS": "0.2"}),
        customer_once_the_trigger_polls(cdata) as customer,
    ):
        result = run_dag("cdata_customer_onboarding", {"account_id": cdata.account_id})
    assert result.state == "success"
    secrets.connect_urls.append(customer["url"])
    return [result]


SCENARIOS: dict[str, Scenario] = {
    "create and edit": create_and_edit,
    "list, delete and clear": list_delete_and_clear,
    "sensor poke": sensor_in("poke"),
    "sensor reschedule": sensor_in("reschedule"),
    "sensor deferrable": sensor_in("deferrable"),
    "onboarding example DAG": onboarding_example,
}


class NotTheCustomer(logging.Filter):
    """Drops the simulated customer's own records: its browser requests carry the connect-link token in
    their URL (urllib3 logs it at DEBUG), and in real life they happen on the customer's machine."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.threadName or "").endswith("(customer)")  # customer_after_polls's thread


@pytest.fixture
def debug_everywhere(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    for name in STDLIB_LOGGERS:
        caplog.set_level(logging.DEBUG, logger=name)
    # A logger's filters see only the records logged on it, not its children's: filter every logger.
    not_the_customer, emitting = NotTheCustomer(), []
    for name in [*STDLIB_LOGGERS, *logging.Logger.manager.loggerDict]:
        if name.split(".")[0] in STDLIB_LOGGERS:
            emitting.append(logging.getLogger(name))
            emitting[-1].addFilter(not_the_customer)
    yield caplog
    for logger in emitting:
        logger.removeFilter(not_the_customer)


def rendered_fields(results: list[DagResult]) -> str:
    """Every task's rendered template fields, as Airflow stored them (``task[i]``: a mapped task)."""
    fields = {}
    for result in results:
        for task in result.task_states():
            task_id, _, index = task.rstrip("]").partition("[")
            fields[f"{result.run_id}/{task}"] = result.rendered(task_id, int(index or -1))
    assert fields, "every run stored its tasks' rendered fields"
    return json.dumps(fields)


def assert_nothing_secret_in(text: str, secrets: Secrets, cdata: CData) -> None:
    key_body = key_lines(cdata.keys.private_pem)
    for line in key_body:
        assert line not in text, "a line of the private key"
    assert not windows("".join(key_body)) & windows(text), "20 characters of the private key"
    for token in secrets.tokens():
        signature = token.split(".")[-1]
        assert token not in text, "a whole token"
        assert signature not in text, "a token's signature"
        assert not windows(signature) & windows(text), "20 characters of a token's signature"
    assert not JWT_SHAPE.search(text), "nothing shaped like a JWT"


@pytest.mark.parametrize("name", SCENARIOS)
def test_no_key_token_or_connect_link_in_any_log_or_rendered_field(
    airflow_conn: CData,
    monkeypatch: pytest.MonkeyPatch,
    debug_everywhere: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
    name: str,
) -> None:
    secrets = Secrets(minted=record_minted_tokens(monkeypatch))
    fresh_masker_per_task(monkeypatch)
    results = SCENARIOS[name](airflow_conn, secrets)
    out, err = capfd.readouterr()
    records = debug_everywhere.records
    logged = "\n".join(
        [out, err]
        + [r.getMessage() for r in records]
        + [repr(r.exc_info[1]) for r in records if r.exc_info and r.exc_info[1] is not None]
    )
    assert secrets.minted, "the hook minted tokens"
    assert "CData API " in logged, "the hook's DEBUG request lines were captured"
    assert "-> 200 in" in logged
    assert {r.name.split(".")[0] for r in records} >= {"airflow_provider_cdata", "urllib3"}
    assert_nothing_secret_in(logged, secrets, airflow_conn)
    assert_nothing_secret_in(rendered_fields(results), secrets, airflow_conn)
