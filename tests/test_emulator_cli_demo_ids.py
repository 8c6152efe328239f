"""The emulator CLI's fixed demo ids and demo key file: what docker-compose.yaml relies on.

The compose file names the demo parent and child ids in ``AIRFLOW_CONN_CDATA_DEFAULT`` and points the
connection's ``private_key_path`` at the key the emulator writes, so no private key is committed.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import jwt
import pytest
import requests

from airflow_provider_cdata.emulator import Emulator
from airflow_provider_cdata.emulator.process import parse_startup
from tests.emulator_cli import emulator_cli as cli
from tests.emulator_cli import served_api_url

TIMEOUT = 10
LIST = "/poweredby/connection/list"
PARENT_ID = "decafbad-0000-4000-8000-000000000001"
ACCOUNT_ID = "decafbad-0000-4000-8000-000000000002"


def demo_args(state: Path, key_file: Path) -> list[str]:
    return [
        "--demo",
        "--state",
        str(state),
        "--demo-parent-id",
        PARENT_ID,
        "--demo-account-id",
        ACCOUNT_ID,
        "--demo-key-file",
        str(key_file),
    ]


def printed_connection(output: str) -> dict[str, Any]:
    return parse_startup(output).airflow_connection()


def list_status(output: str, private_pem: str, parent_id: str, account_id: str) -> int:
    """Status of an authenticated List Connections call, signed with ``private_pem``."""
    return _list_status(served_api_url(output), private_pem, parent_id, account_id)


def _list_status(base_url: str, private_pem: str, parent_id: str, account_id: str) -> int:
    now = int(time.time())
    claims = {"tokenType": "powered-by", "iat": now, "exp": now + 60, "iss": parent_id, "sub": account_id}
    token = jwt.encode(claims, private_pem, algorithm="RS256")
    answer = requests.get(f"{base_url}{LIST}", headers={"Authorization": f"Bearer {token}"}, timeout=TIMEOUT)
    return answer.status_code


def test_fixed_ids_and_key_file_make_a_working_connection_without_the_key_in_it(tmp_path: Path) -> None:
    key_file = tmp_path / "keys" / "cdata-demo.pem"
    with cli(*demo_args(tmp_path / "state.json", key_file)) as output:
        connection = printed_connection(output)
        assert connection["login"] == PARENT_ID
        assert connection["extra"]["account_id"] == ACCOUNT_ID
        assert connection["extra"]["private_key_path"] == str(key_file)
        assert "password" not in connection
        assert "PRIVATE KEY" not in output, "the key stays out of the emulator's output (docker logs)"
        assert oct(key_file.stat().st_mode & 0o777) == "0o600"
        private_pem = key_file.read_text()
        assert private_pem.startswith("-----BEGIN PRIVATE KEY-----")
        assert list_status(output, private_pem, PARENT_ID, ACCOUNT_ID) == 200


def test_a_restart_reuses_the_key_from_the_state_file_and_rewrites_a_lost_key_file(tmp_path: Path) -> None:
    state, key_file = tmp_path / "state.json", tmp_path / "cdata-demo.pem"
    with cli(*demo_args(state, key_file)):
        first_key = key_file.read_text()
    key_file.unlink()
    with cli(*demo_args(state, key_file)) as output:
        assert key_file.read_text() == first_key
        assert oct(key_file.stat().st_mode & 0o777) == "0o600"
        assert list_status(output, first_key, PARENT_ID, ACCOUNT_ID) == 200


def test_without_a_key_file_the_connection_carries_the_key_as_before(tmp_path: Path) -> None:
    with cli("--demo", "--demo-parent-id", PARENT_ID, "--demo-account-id", ACCOUNT_ID) as output:
        connection = printed_connection(output)
        assert "private_key_path" not in connection["extra"]
        assert list_status(output, connection["password"], PARENT_ID, ACCOUNT_ID) == 200


def test_changed_ids_replace_the_saved_demo() -> None:
    other_account = "decafbad-0000-4000-8000-000000000003"
    with Emulator() as emu:
        first = emu.demo_credentials(PARENT_ID, ACCOUNT_ID)
        assert emu.demo_credentials(PARENT_ID, ACCOUNT_ID) == first
        second = emu.demo_credentials(PARENT_ID, other_account)
        assert (second.parent_id, second.account_id) == (PARENT_ID, other_account)
        assert second.private_key_pem != first.private_key_pem
        assert _list_status(emu.base_url, second.private_key_pem, PARENT_ID, other_account) == 200
        assert _list_status(emu.base_url, first.private_key_pem, PARENT_ID, other_account) == 401


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "airflow_provider_cdata.emulator", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("flag", ["--demo-parent-id", "--demo-account-id"])
def test_an_id_that_is_not_a_uuid_is_refused_naming_the_flag(flag: str) -> None:
    result = run_cli("--demo", flag, "acme")
    assert result.returncode == 2
    assert f"argument {flag}: not a UUID: 'acme'" in result.stderr


@pytest.mark.parametrize(
    ("flag", "value"),
    [("--demo-parent-id", PARENT_ID), ("--demo-account-id", ACCOUNT_ID), ("--demo-key-file", "k.pem")],
)
def test_demo_flags_without_demo_are_refused(flag: str, value: str, tmp_path: Path) -> None:
    result = run_cli(flag, str(tmp_path / value) if flag == "--demo-key-file" else value)
    assert result.returncode == 2
    assert f"{flag} needs --demo" in result.stderr
    assert not (tmp_path / "k.pem").exists()
