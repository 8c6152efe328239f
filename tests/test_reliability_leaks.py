"""Leak scan: every operator and the sensor in every mode, run by Airflow (dag.test()) with DEBUG logging,
successes, retries and failures, and a task that handles the key (from the password, or a file), minted
tokens and a connect link itself. Collected: every line Airflow printed at DEBUG (task logs, the
triggerer's lines, and the in-process supervisor's: under dag.test() it logs each message a task sends
it, MaskSecret(value=<the secret>) included, issue 16), every stdlib record of the provider, urllib3,
aiohttp, and every rendered template field stored for every task. The same task also runs
under `airflow tasks test` at DEBUG, in a subprocess, and its output is scanned as well.

Searched for: each line of the private key's PEM body (and any 20 characters in a row of it), every JWT
the hook minted (captured as it was signed) and every connect-URL token, whole and by their signature
segment (Airflow 3.3 rewrites anything starting with ``eyJ`` to ``eyJ***`` in its own log lines, so the
signature is what could slip through). One known exception, documented in the README (Secrets): the
connect link in Airflow's DEBUG dump of an XCom (AIRFLOW_XCOM_DUMP below).

dag.test() runs every task in this one process, so the secrets masker would know a token another task
registered. Each task here starts with an empty masker (and the hook's masker budget reset), as a task
in its own worker process does.
"""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast
from unittest import mock
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.conftest import CData, cdata_connection
from tests.dag_runner import DagResult, init_airflow_db, run_dag
from tests.test_example_dags import customer_once_the_trigger_polls
from tests.test_hook_logging import JWT_SHAPE, key_lines, minted_tokens, windows
from tests.test_sensor import customer_after_polls

UNKNOWN_ID = "0b5f7d5c-3e1a-4c55-9a66-2f3b1e7c9d10"
STDLIB_LOGGERS = ("airflow_provider_cdata", "urllib3", "aiohttp", "aiohttp.client", "aiohttp.internal")


@dataclass
class Secrets:
    """Everything that must never be seen, gathered while the DAGs run."""

    minted: list[str] = field(default_factory=list)
    connect_urls: list[str] = field(default_factory=list)

    def connect_tokens(self) -> list[str]:
        return [t for url in self.connect_urls for t in parse_qs(urlsplit(url).query).get("token", [])]

    def tokens(self) -> list[str]:
        return [*self.minted, *self.connect_tokens()]


# The known exception (README, Secrets): at DEBUG Airflow's supervisor logs each message a task sends it
# whole but MaskSecret ("Received message from task runner", logger "supervisor"; under dag.test() also
# the in-process "Sending request"), so a connect link, which CreateConnectionOperator and
# EditConnectionOperator return to XCom by design, shows in its SetXCom line. The provider cannot change
# that without keeping the link out of XCom. Only that is allowed: the connect-URL tokens in those
# lines are blanked before the scan, and everything else in them is scanned as any other line.
AIRFLOW_XCOM_DUMP = re.compile(r"(Sending request|Received message from task runner)\b.*msg=SetXCom\(")


def without_the_known_exception(text: str, secrets: Secrets) -> str:
    lines = text.splitlines()
    for index, line in enumerate(lines):
        if AIRFLOW_XCOM_DUMP.search(line):
            for token in secrets.connect_tokens():
                line = line.replace(token, "<a connect-URL token in an XCom, README: Secrets>")
            lines[index] = line
    return "\n".join(lines)


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


def account_calls(cdata: CData, secrets: Secrets) -> list[DagResult]:
    """Every child-account and data-source call (parent-level tokens), a retry and a 409 among them."""
    cdata.emulator.inject("status", status=503, route="account_list", times=1)
    result = run_dag("cdata_test_accounts")
    assert result.state == "success"
    shown = result.xcom("account_calls")
    assert (shown["listed"], shown["minted"]) == (2, 1), "both accounts listed, one parent token"
    assert cdata.emulator.counters.count("account_create", 409) == 1
    return [result]


def secrets_in_a_task(key_in: str) -> Scenario:
    """The hook loads the key (from the password, or a file Airflow never sees), mints a token, gets a
    connect link; the task reports what Airflow's masker makes of a log line holding each of them."""

    def handles(cdata: CData, secrets: Secrets) -> list[DagResult]:
        connection = cdata_connection(cdata)
        with tempfile.TemporaryDirectory() as folder:
            if key_in == "file":
                key_file = Path(folder, "cdata.pem")
                key_file.write_text(cdata.keys.private_pem)
                key_file.chmod(0o600)
                connection = {**connection, "password": None}
                connection["extra"] = {**connection["extra"], "private_key_path": str(key_file)}
            with mock.patch.dict(os.environ, {"AIRFLOW_CONN_CDATA_DEFAULT": json.dumps(connection)}):
                result = run_dag("cdata_test_secrets_in_task")
        assert result.state == "success"
        shown = result.xcom("handle_secrets")
        secrets.connect_urls.append(shown["link"])  # XCom holds the link, as CreateConnectionOperator's
        assert shown["minted"] == 1
        assert shown["first_line"] == "the key's first line: ***", "each line of the key is masked"
        assert set(shown["pem"].replace("the key: ", "").splitlines()) <= {
            "***",
            "-----BEGIN PRIVATE KEY-----",
            "-----END PRIVATE KEY-----",
        }
        assert shown["token"] == "Bearer ***", "the minted token is masked"
        assert "token=***" in shown["url"], "the connect link's token is masked"
        return [result]

    return handles


SCENARIOS: dict[str, Scenario] = {
    "create and edit": create_and_edit,
    "list, delete and clear": list_delete_and_clear,
    "sensor poke": sensor_in("poke"),
    "sensor reschedule": sensor_in("reschedule"),
    "sensor deferrable": sensor_in("deferrable"),
    "onboarding example DAG": onboarding_example,
    "account and data-source calls": account_calls,
    "a task with the key (password), tokens and a link": secrets_in_a_task("password"),
    "a task with the key (file), tokens and a link": secrets_in_a_task("file"),
}


class NotTheCustomer(logging.Filter):
    """Drops the simulated customer's own records: its browser requests carry the connect-link token in
    their URL (urllib3 logs it at DEBUG), and in real life they happen on the customer's machine."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.threadName or "").endswith("(customer)")  # customer_after_polls's thread


def airflow_logs_at_debug(monkeypatch: pytest.MonkeyPatch) -> None:
    """Airflow's own (structlog) lines at DEBUG, as with ``AIRFLOW__LOGGING__LOGGING_LEVEL=DEBUG``: the
    level of its unnamed loggers, the in-process supervisor's among them, is the root's. The levels live
    in the module whose filtering logger structlog is configured with (Airflow core's copy here)."""
    import structlog

    configured = sys.modules[structlog.get_config()["wrapper_class"].__module__]
    monkeypatch.setitem(configured.PER_LOGGER_LEVELS, "", logging.DEBUG)


@pytest.fixture
def debug_everywhere(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> Iterator[pytest.LogCaptureFixture]:
    airflow_logs_at_debug(monkeypatch)
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
    assert "Sending request" in logged, "the in-process supervisor's DEBUG lines were captured"
    assert {r.name.split(".")[0] for r in records} >= {"airflow_provider_cdata", "urllib3"}
    assert_nothing_secret_in(without_the_known_exception(logged, secrets), secrets, airflow_conn)
    assert_nothing_secret_in(rendered_fields(results), secrets, airflow_conn)


def test_airflow_tasks_test_at_debug_prints_no_key_and_no_token(
    airflow_conn: CData, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 16 as reported: `airflow tasks test` at DEBUG, in its own process. Its in-process
    supervisor logs each message the task sends it; the key and the tokens must not be among them."""
    issued: list[str] = []  # the connect-URL tokens the emulator signs
    flow_tokens = airflow_conn.emulator.ctx.flow_tokens
    sign = flow_tokens.sign

    def recording_sign(claims: dict[str, Any], now: float) -> str:
        issued.append(sign(claims, now))
        return issued[-1]

    monkeypatch.setattr(flow_tokens, "sign", recording_sign)
    init_airflow_db()
    airflow = Path(sys.executable).with_name("airflow")
    done = subprocess.run(
        [str(airflow), "tasks", "test", "cdata_test_secrets_in_task", "handle_secrets"],
        env={**os.environ, "AIRFLOW__LOGGING__LOGGING_LEVEL": "DEBUG"},
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    printed = f"{done.stdout}\n{done.stderr}"
    assert done.returncode == 0, printed[-3000:]
    assert "Sending request" in printed, "the in-process supervisor's DEBUG lines were printed"
    assert "msg=MaskSecret(" not in printed, "no secret sent to the masker is printed"
    secrets = Secrets(minted=sorted(minted_tokens(airflow_conn)))
    secrets.connect_urls = [f"https://cdata.example/connect?token={token}" for token in issued]
    assert len(secrets.minted) == len(issued) == 1
    assert_nothing_secret_in(without_the_known_exception(printed, secrets), secrets, airflow_conn)
