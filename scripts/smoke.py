"""Does Airflow, with this provider installed, work? A smoke check of one installed environment.

Run it with the Python of the environment to check (a venv made from the wheel, or one of bootstrap.sh's):

    VENV/bin/python scripts/smoke.py [--airflow-version 3.2.2] [--dags dags_examples]

In a fresh AIRFLOW_HOME (SQLite, in a temporary folder) it runs, each step on its own so one failure does
not hide the next: ``airflow version``; ``airflow providers list`` and ``airflow providers hooks`` (the
provider and its ``cdata`` connection type); ``airflow db migrate``; the emulator (``python -m
airflow_provider_cdata.emulator --demo``) and ``airflow connections test cdata_default`` against it (which
must show up in the emulator's counters); with ``--dags``, ``airflow dags test cdata_metadata_refresh``;
then the api-server on 127.0.0.1 (a free port): ``/api/v2/monitor/health``, a login and an authenticated
``/api/v2/providers`` call. It prints one line per step and exits 1 if any failed. Everything it starts
is stopped (by PID, process group included) before it exits.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import requests

BIN = Path(sys.executable).parent
AIRFLOW = str(BIN / "airflow")
USER, PASSWORD = "smoke", secrets.token_urlsafe(16)


class StepFailed(Exception):
    pass


def run(args: list[str], env: dict[str, str], timeout: float = 180, stdout_only: bool = False) -> str:
    done = subprocess.run(  # noqa: S603 (our own commands)
        args, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    if done.returncode != 0:
        raise StepFailed(f"exit {done.returncode}: {(done.stdout + done.stderr)[-1500:]}")
    return done.stdout if stdout_only else done.stdout + done.stderr


def line_with(text: str, word: str) -> str:
    for line in text.splitlines():
        if word in line:
            return " ".join(line.split())
    raise StepFailed(f"no line with {word!r} in:\n{text[-1500:]}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def started(args: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[str]]:
    """A process in a session of its own; on exit SIGTERM to its group, then SIGKILL, both by its PID."""
    with log.open("w") as out:
        process = subprocess.Popen(  # noqa: S603 (our own commands)
            args, env=env, stdout=subprocess.PIPE, stderr=out, text=True, start_new_session=True
        )
    try:
        yield process
    finally:
        for sig, wait in ((signal.SIGTERM, 20.0), (signal.SIGKILL, 10.0)):
            try:
                os.killpg(process.pid, sig)
            except ProcessLookupError:
                break
            try:
                process.wait(timeout=wait)
                # The leader is gone; its group may not be (uvicorn workers): go round once more.
                os.killpg(process.pid, 0)
            except (subprocess.TimeoutExpired, ProcessLookupError):
                continue
        if process.stdout:
            process.stdout.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--airflow-version", help="fail unless `airflow version` says this")
    parser.add_argument("--dags", type=Path, help="a DAGs folder holding the example DAGs")
    options = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="cdata-smoke-"))
    home = work / "airflow-home"
    home.mkdir()
    (home / "passwords.json").write_text(json.dumps({USER: PASSWORD}))
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env.update(
        {
            "PATH": f"{BIN}:{env.get('PATH', '/usr/bin:/bin')}",
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_FOLDER": str((options.dags or work / "dags").resolve()),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
            "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(32),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{USER}:admin",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / "passwords.json"),
            "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",
            "AIRFLOW__API__WORKERS": "1",
        }
    )
    failed: list[str] = []

    def step(name: str, check: Callable[[], str]) -> None:
        began = time.monotonic()
        try:
            detail = check()
        except (StepFailed, requests.RequestException, subprocess.TimeoutExpired, OSError) as error:
            failed.append(name)
            print(f"FAIL {name} ({time.monotonic() - began:.1f} s): {error}", flush=True)
        else:
            print(f"ok   {name} ({time.monotonic() - began:.1f} s): {detail}", flush=True)

    def version() -> str:
        said = run([AIRFLOW, "version"], env, stdout_only=True).strip().splitlines()[-1]
        if options.airflow_version and said != options.airflow_version:
            raise StepFailed(f"airflow version says {said}, not {options.airflow_version}")
        return said

    step("airflow version", version)
    step(
        "providers list",
        lambda: line_with(run([AIRFLOW, "providers", "list"], env), "airflow-provider-cdata"),
    )
    step("providers hooks", lambda: line_with(run([AIRFLOW, "providers", "hooks"], env), "cdata"))
    step("db migrate", lambda: line_with(run([AIRFLOW, "db", "migrate"], env, timeout=300), "atabase"))

    emulator_args = [sys.executable, "-m", "airflow_provider_cdata.emulator", "--demo", "--port", "0"]
    with started(emulator_args, env, work / "emulator.log") as emulator:
        root, connection = "", ""
        assert emulator.stdout is not None
        deadline = time.monotonic() + 60
        for text in emulator.stdout:
            found = re.search(r"export AIRFLOW_CONN_CDATA_DEFAULT='(.*)'", text)
            connection = found.group(1) if found else connection
            served = re.search(r"serving (http://\S+)/api", text)
            if served:
                root = served.group(1)
                break
            if time.monotonic() > deadline:
                break
        env["AIRFLOW_CONN_CDATA_DEFAULT"] = connection

        def emulator_up() -> str:
            if not (root and connection):
                raise StepFailed(f"did not start: {(work / 'emulator.log').read_text()[-1500:]}")
            requests.get(f"{root}/_emulator/health", timeout=10).raise_for_status()
            return root

        def connections_test() -> str:
            out = run([AIRFLOW, "connections", "test", "cdata_default"], env)
            if "Connection success!" not in out:
                raise StepFailed(f"no 'Connection success!' in:\n{out[-1500:]}")
            counters: dict[str, Any] = requests.get(f"{root}/_emulator/counters", timeout=10).json()
            if "list" not in json.dumps(counters):
                raise StepFailed(f"the emulator counted no List Connections call: {counters}")
            return "Connection success!, and the emulator counted the List Connections call"

        def dags_test() -> str:
            out = run([AIRFLOW, "dags", "test", "cdata_metadata_refresh"], env, timeout=300)
            finished = re.search(r"DagRun Finished: .*?state=(\w+)", out)
            if not finished or finished.group(1) != "success":
                raise StepFailed(f"the run did not succeed:\n{out[-2500:]}")
            return "DagRun Finished: state=success"

        step("emulator --demo", emulator_up)
        if root:
            step("connections test cdata_default (emulator)", connections_test)
            if options.dags:
                step("dags test cdata_metadata_refresh", dags_test)

    port = free_port()
    api = f"http://127.0.0.1:{port}"
    env["AIRFLOW__API__BASE_URL"] = api
    with started(
        [AIRFLOW, "api-server", "-H", "127.0.0.1", "-p", str(port)], env, work / "api.log"
    ) as server:

        def health() -> str:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                if server.poll() is not None:
                    raise StepFailed(f"api-server exited {server.returncode}: {read_tail(work / 'api.log')}")
                try:
                    answer = requests.get(f"{api}/api/v2/monitor/health", timeout=5)
                    if answer.status_code == 200:
                        return answer.text[:160]
                except requests.ConnectionError:
                    pass
                time.sleep(0.5)
            raise StepFailed(f"no health answer in 120 s: {read_tail(work / 'api.log')}")

        def providers_api() -> str:
            login = requests.post(
                f"{api}/auth/token", json={"username": USER, "password": PASSWORD}, timeout=20
            )
            if login.status_code not in (200, 201):
                raise StepFailed(f"login: {login.status_code} {login.text[:300]}")
            token = login.json()["access_token"]
            answer = requests.get(
                f"{api}/api/v2/providers", headers={"Authorization": f"Bearer {token}"}, timeout=20
            )
            if answer.status_code != 200 or "airflow-provider-cdata" not in answer.text:
                raise StepFailed(f"/api/v2/providers: {answer.status_code} {answer.text[:300]}")
            return "airflow-provider-cdata listed by the API"

        step("api-server /api/v2/monitor/health", health)
        if "api-server /api/v2/monitor/health" not in failed:
            step("api-server login + /api/v2/providers", providers_api)

    if failed:
        print(f"smoke: FAILED: {', '.join(failed)} (logs in {work})")
        return 1
    shutil.rmtree(work, ignore_errors=True)
    print("smoke: all steps ok")
    return 0


def read_tail(path: Path) -> str:
    return path.read_text(errors="replace")[-1500:] if path.exists() else ""


if __name__ == "__main__":
    sys.exit(main())
