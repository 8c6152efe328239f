"""Faults on demand, state across restarts, and the command line."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import jwt
import pytest
import requests

from airflow_provider_cdata.emulator import Emulator, FaultRule, complete_flow, parse_fault_spec
from tests.conftest import CData
from tests.emulator_cli import emulator_cli, served_api_url

TIMEOUT = 10
LIST = "/poweredby/connection/list"


def get(cdata: CData, session: requests.Session | None = None) -> requests.Response:
    return (session or requests).get(f"{cdata.base_url}{LIST}", headers=cdata.headers(), timeout=TIMEOUT)


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_status_faults_fire_the_given_times_then_the_call_works(cdata: CData, status: int) -> None:
    cdata.emulator.inject("status", status=status, times=2)
    assert [get(cdata).status_code for _ in range(3)] == [status, status, 200]
    assert get(cdata).json()["connections"] == []
    assert cdata.emulator.counters.faults["status"] == 2


def test_429_carries_retry_after_in_seconds_or_as_an_http_date(cdata: CData) -> None:
    cdata.emulator.inject("status", status=429, retry_after=2, times=1)
    cdata.emulator.inject("status", status=429, retry_after=3, retry_after_date=True, times=1)
    first, second = get(cdata), get(cdata)
    assert (first.status_code, first.headers["retry-after"]) == (429, "2")
    assert second.status_code == 429
    assert second.headers["retry-after"].endswith("GMT")


def test_html_fault_is_an_html_error_page(cdata: CData) -> None:
    cdata.emulator.inject("html", times=1)
    answer = get(cdata)
    assert answer.status_code == 502
    assert answer.headers["content-type"].startswith("text/html")
    assert "<h1>502 Bad Gateway</h1>" in answer.text


def test_drop_closes_the_connection_without_an_answer(cdata: CData) -> None:
    cdata.emulator.inject("drop", times=1)
    with pytest.raises(requests.ConnectionError):
        get(cdata)
    assert get(cdata).status_code == 200


def test_truncated_sends_half_a_body_and_closes(cdata: CData) -> None:
    cdata.emulator.add_connection(cdata.account_id)
    cdata.emulator.inject("truncated", times=1)
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        get(cdata).json()
    assert len(get(cdata).json()["connections"]) == 1


def test_truncated_also_cuts_an_empty_body(cdata: CData) -> None:
    connection = cdata.emulator.add_connection(cdata.account_id)
    cdata.emulator.inject("truncated", times=1, route="delete")
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        requests.delete(
            f"{cdata.base_url}/poweredby/connection/delete/{connection['id']}",
            headers=cdata.headers(),
            timeout=TIMEOUT,
        )


def test_latency_delays_the_answer(cdata: CData) -> None:
    cdata.emulator.inject("latency", seconds=0.3)
    started = time.monotonic()
    assert get(cdata).status_code == 200
    assert time.monotonic() - started >= 0.3


def test_faults_apply_to_their_route_only(cdata: CData) -> None:
    cdata.emulator.inject("status", status=503, route="delete")
    assert get(cdata).status_code == 200
    answer = requests.delete(
        f"{cdata.base_url}/poweredby/connection/delete/7f1c3f5e-7e0e-4a8e-9b3f-1f6f1b1f1b1f",
        headers=cdata.headers(),
        timeout=TIMEOUT,
    )
    assert answer.status_code == 503


def test_the_connect_page_and_admin_routes_are_never_faulted(cdata: CData) -> None:
    url = cdata.connect_url("https://a.example/")
    cdata.emulator.inject("status", status=503)
    assert complete_flow(url)["cdata_connection_status"] == "success"
    assert requests.get(f"{cdata.emulator.root_url}/_emulator/health", timeout=TIMEOUT).status_code == 200


def _sequence(seed: int, keys: Any) -> list[int]:
    with Emulator(seed=seed) as emu:
        parent = emu.register_parent(keys.public_pem)
        cdata = CData(emu, keys, parent, emu.add_account(parent)["id"])
        emu.inject("status", status=503, rate=0.5)
        with requests.Session() as session:
            return [get(cdata, session).status_code for _ in range(30)]


def test_rates_are_reproducible_with_a_seed(keys: Any) -> None:
    first, again, other = _sequence(7, keys), _sequence(7, keys), _sequence(8, keys)
    assert first == again
    assert first != other
    assert 5 < first.count(503) < 25


def test_faults_can_be_set_at_runtime_over_http(cdata: CData) -> None:
    root = cdata.emulator.root_url
    added = requests.post(
        f"{root}/_emulator/faults", json={"kind": "status", "status": 504, "times": 1}, timeout=TIMEOUT
    )
    assert added.status_code == 200
    assert get(cdata).status_code == 504
    bad = requests.post(f"{root}/_emulator/faults", json={"kind": "meteor"}, timeout=TIMEOUT)
    assert bad.status_code == 400
    requests.delete(f"{root}/_emulator/faults", timeout=TIMEOUT)
    assert cdata.emulator.ctx.faults.rules == []


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("503:rate=0.3", FaultRule("status", status=503, rate=0.3)),
        ("429:retry_after=1,route=list", FaultRule("status", status=429, retry_after=1.0, route="list")),
        ("latency:seconds=0.02", FaultRule("latency", seconds=0.02)),
        ("drop:times=2", FaultRule("drop", times=2)),
        ("html", FaultRule("html", status=502)),
        ("truncated:route=create", FaultRule("truncated", route="create")),
    ],
)
def test_cli_fault_specs(spec: str, expected: FaultRule) -> None:
    assert parse_fault_spec(spec) == expected


@pytest.mark.parametrize("spec", ["meteor", "503:rate=2", "503:color=red", "503:rate"])
def test_bad_cli_fault_specs_are_refused(spec: str) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - each spec has its own message
        parse_fault_spec(spec)


# -- state and the command line -------------------------------------------------------------------
def test_state_survives_a_restart_in_process(tmp_path: Path, keys: Any) -> None:
    state = tmp_path / "state.json"
    with Emulator(state_path=state) as emu:
        parent = emu.register_parent(keys.public_pem)
        account = emu.add_account(parent)["id"]
        kept = emu.add_connection(account, name="kept")
    with Emulator(state_path=state) as emu:
        cdata = CData(emu, keys, parent, account)
        assert [c["id"] for c in get(cdata).json()["connections"]] == [kept["id"]]


def test_cli_demo_prints_a_working_airflow_connection_and_keeps_state(tmp_path: Path) -> None:
    state, env_file = tmp_path / "state.json", tmp_path / "demo.env"
    with emulator_cli("--demo", "--state", str(state), "--demo-env-file", str(env_file)) as output:
        match = re.search(r"export AIRFLOW_CONN_CDATA_DEFAULT='(.*)'", output)
        assert match, output
        connection = json.loads(match.group(1))
        assert connection["conn_type"] == "cdata"
        assert env_file.read_text().strip() == match.group(0)
        assert oct(env_file.stat().st_mode & 0o777) == "0o600"
        base = served_api_url(output)
        now = int(time.time())
        token = jwt.encode(
            {
                "tokenType": "powered-by",
                "iat": now,
                "exp": now + 60,
                "iss": connection["login"],
                "sub": connection["extra"]["account_id"],
            },
            connection["password"],
            algorithm="RS256",
        )
        headers = {"Authorization": f"Bearer {token}"}
        assert requests.get(f"{base}{LIST}", headers=headers, timeout=TIMEOUT).json() == {"connections": []}
        requests.post(
            base.replace("/api", "/_emulator/connections"),
            json={"accountId": connection["extra"]["account_id"], "name": "survivor", "ageDays": 100},
            timeout=TIMEOUT,
        ).raise_for_status()
    with emulator_cli("--demo", "--state", str(state)) as output:
        again = json.loads(re.search(r"export AIRFLOW_CONN_CDATA_DEFAULT='(.*)'", output).group(1))  # type: ignore[union-attr]
        assert again["login"] == connection["login"], "the demo parent is kept in the state file"
        base = served_api_url(output)
        listed = requests.get(f"{base}{LIST}", headers=headers, timeout=TIMEOUT).json()["connections"]
        assert [c["name"] for c in listed] == ["survivor"]
        modified = datetime.fromisoformat(listed[0]["lastModified"].replace("Z", "+00:00"))
        assert datetime.now(timezone.utc) - modified > timedelta(days=99), "seeded 100 days old"


def test_cli_refuses_a_bad_fault_spec() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "airflow_provider_cdata.emulator", "--fault", "meteor"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "bad --fault" in result.stderr
