"""The demo behind ``scripts/demo.sh``: the three example DAGs, run by Airflow against the emulator.

1. Starts ``python -m airflow_provider_cdata.emulator --demo`` on a free port (a generated parent key
   pair and child account) and seeds a few connections, some of them stale.
2. Points ``cdata_default`` at it (``AIRFLOW_CONN_CDATA_DEFAULT``) in a fresh AIRFLOW_HOME on SQLite.
3. Runs, with Airflow's ``dag.test()``: ``cdata_metadata_refresh``; ``cdata_customer_onboarding`` while
   a simulated customer reads the connect link from XCom and completes the connect page once the
   deferred sensor's trigger is polling; ``cdata_stale_connection_cleanup`` as a dry run, then for real.
4. Prints what each run did, and stops the emulator. Airflow's own log goes to .demo/airflow.log.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO

import requests

from airflow_provider_cdata.emulator.process import (
    EmulatorProcess,
    EmulatorProcessError,
    start_process,
    stop_process,
)

REPO = Path(__file__).resolve().parent.parent
WORK = REPO / ".demo"
OUT: TextIO = sys.stdout


def say(text: str = "") -> None:
    OUT.write(text + "\n")
    OUT.flush()


# -- the emulator -------------------------------------------------------------------------------------
def start_emulator() -> tuple[EmulatorProcess, dict[str, Any], str]:
    try:
        emulator = start_process(["--demo", "--port", "0"], stderr_to_stdout=False)
        return emulator, emulator.airflow_connection(), emulator.root_url
    except EmulatorProcessError as exc:
        raise SystemExit(str(exc)) from None


def seed(root: str, account_id: str) -> None:
    """Connections for the refresh and the cleanup: three recent, two untouched for ~200 days."""
    for name, age in (
        ("Sales CRM", 1),
        ("Marketing", 3),
        ("Billing", 10),
        ("Old trial", 200),
        ("Old pilot", 210),
    ):
        answer = requests.post(
            f"{root}/_emulator/connections",
            json={"accountId": account_id, "name": name, "ageDays": age},
            timeout=10,
        )
        answer.raise_for_status()


def emulator_log(root: str) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = requests.get(f"{root}/_emulator/log", timeout=10).json()
    return entries


# -- Airflow ------------------------------------------------------------------------------------------
def configure_airflow(connection: dict[str, Any]) -> None:
    """A fresh AIRFLOW_HOME (SQLite) before Airflow is imported; cdata_default points at the emulator."""
    home = WORK / "airflow-home"
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    os.environ.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags_examples"),
            "AIRFLOW_CONN_CDATA_DEFAULT": json.dumps(connection),
            "CDATA_ONBOARDING_POKE_SECONDS": "1",
        }
    )


@contextmanager
def airflow_output_to(log_file: Path) -> Iterator[None]:
    """Send everything Airflow prints (fd 1 and 2) to a file; the demo keeps the terminal."""
    saved = os.dup(1), os.dup(2)
    with log_file.open("a") as target:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(target.fileno(), 1)
        os.dup2(target.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


def run(dag_id: str, conf: dict[str, Any] | None = None) -> Any:
    from airflow_provider_cdata._compat import dag_bag  # where DagBag is depends on the Airflow version

    with airflow_output_to(WORK / "airflow.log"):
        dag = dag_bag(str(REPO / "dags_examples")).get_dag(dag_id)
        return dag.test(run_conf=conf)


def xcom(run: Any, task_id: str, map_index: int = -1) -> Any:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        row = (
            session.query(XComModel)
            .filter_by(
                dag_id=run.dag_id, run_id=run.run_id, task_id=task_id, key="return_value", map_index=map_index
            )
            .one_or_none()
        )
        return None if row is None else row.value


def task_states(run: Any) -> dict[str, str]:
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session

    with create_session() as session:
        rows = session.query(TaskInstance).filter_by(dag_id=run.dag_id, run_id=run.run_id).all()
        return {r.task_id if r.map_index < 0 else f"{r.task_id}[{r.map_index}]": str(r.state) for r in rows}


def outcome(run: Any) -> str:
    states = task_states(run)
    return f"run {run.state}; tasks: " + ", ".join(f"{t} {s}" for t, s in sorted(states.items()))


# -- the simulated customer ---------------------------------------------------------------------------
class Customer(threading.Thread):
    """Reads the connect link from XCom (as the product's app would), waits until the deferred sensor's
    trigger is polling the emulator, then completes the connect page without a browser."""

    def __init__(self, root: str) -> None:
        super().__init__(daemon=True)
        self.root = root
        self.result: dict[str, Any] = {}

    def run(self) -> None:
        from airflow_provider_cdata.emulator import complete_flow

        deadline = time.monotonic() + 120
        url = self._connect_link(deadline)
        while self._trigger_polls() == 0 and time.monotonic() < deadline:
            time.sleep(0.2)
        self.result["trigger_polls_before_save"] = self._trigger_polls()
        self.result["redirect"] = complete_flow(url, name="Acme Salesforce")

    def _connect_link(self, deadline: float) -> str:
        from airflow.models.xcom import XComModel
        from airflow.utils.session import create_session

        while time.monotonic() < deadline:
            with create_session() as session:
                row = (
                    session.query(XComModel)
                    .filter_by(dag_id="cdata_customer_onboarding", task_id="create_connect_link")
                    .first()
                )
            if row is not None:
                return str(row.value)
            time.sleep(0.2)
        raise TimeoutError("no connect link in XCom")

    def _trigger_polls(self) -> int:
        # The trigger polls with the hook's async client (aiohttp); the task's own poke uses requests.
        return sum(
            1 for r in emulator_log(self.root) if r["route"] == "list" and "aiohttp" in r["user_agent"]
        )


# -- the three runs -----------------------------------------------------------------------------------
def demo_refresh(root: str) -> bool:
    run_ = run("cdata_metadata_refresh")
    cleared = xcom(run_, "clear_metadata", map_index=0) or []
    say(f"1. cdata_metadata_refresh: {outcome(run_)}")
    say(f"   cleared the metadata cache of {len(cleared)} connections of the demo child account")
    return str(run_.state) == "success" and len(cleared) == 5


def demo_onboarding(root: str, account_id: str) -> bool:
    customer = Customer(root)
    customer.start()
    run_ = run("cdata_customer_onboarding", {"account_id": account_id, "data_source": "Salesforce"})
    customer.join(timeout=120)
    link = str(xcom(run_, "create_connect_link") or "")
    connection = xcom(run_, "wait_for_connection") or {}
    polls = customer.result.get("trigger_polls_before_save", 0)
    say(f"2. cdata_customer_onboarding: {outcome(run_)}")
    say(f"   connect link in XCom for the app: {link.split('token=')[0]}token=*** (masked in the logs)")
    say(
        f"   the sensor deferred: its trigger polled CData {polls} time(s) before the customer saved the page"
    )
    say(f"   the customer was redirected with {customer.result.get('redirect')}")
    say(f"   the sensor resumed with connection {connection.get('name')!r} ({connection.get('id')}), whose")
    say(f"   metadata cache refresh_metadata cleared: {xcom(run_, 'refresh_metadata')}")
    return str(run_.state) == "success" and polls > 0 and bool(connection)


def demo_cleanup() -> bool:
    dry = run("cdata_stale_connection_cleanup")
    stale = [c["name"] for c in xcom(dry, "find_stale_connections") or []]
    say(f"3. cdata_stale_connection_cleanup (dry run, the default): {outcome(dry)}")
    say(f"   stale for 90+ days: {stale}; deleted: {xcom(dry, 'delete_stale_connections')}")
    real = run("cdata_stale_connection_cleanup", {"dry_run": False})
    deleted = xcom(real, "delete_stale_connections") or []
    say(f"   again with dry_run=false: {outcome(real)}")
    say(f"   deleted {len(deleted)} connections: {deleted}")
    return str(dry.state) == str(real.state) == "success" and len(deleted) == len(stale) == 2


def main() -> int:
    WORK.mkdir(exist_ok=True)
    (WORK / "airflow.log").unlink(missing_ok=True)
    emulator, connection, root = start_emulator()
    say(f"CData emulator running at {root}/api (demo parent {connection['login']})")
    try:
        account_id = connection["extra"]["account_id"]
        seed(root, account_id)
        configure_airflow(connection)
        from airflow.utils import db

        with airflow_output_to(WORK / "airflow.log"):
            db.resetdb()
        say(f"Airflow metadata database: SQLite in {WORK / 'airflow-home'}\n")
        results = [demo_refresh(root), demo_onboarding(root, account_id), demo_cleanup()]
        left = [c["name"] for c in requests.get(f"{root}/_emulator/state", timeout=10).json()["connections"]]
        say(f"\nConnections left in the emulator: {left}")
    finally:
        stop_process(emulator.process, signal.SIGTERM)  # one signal; killed if it does not stop
        say(f"Emulator stopped. Airflow's log: {WORK / 'airflow.log'}")
    if all(results):
        say("Demo OK: all three DAG runs succeeded.")
        return 0
    say("Demo FAILED: see above and .demo/airflow.log")
    return 1


if __name__ == "__main__":
    sys.exit(main())
