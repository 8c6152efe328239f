"""A small typed client for Airflow 3's REST API v2, as the end-to-end tests use it.

Auth: Airflow 3.3's simple auth manager serves ``POST /auth/token`` (JSON ``username``/``password``) and
answers ``{"access_token": "<JWT>"}``; every ``/api/v2`` call then sends ``Authorization: Bearer <JWT>``.
The harness configures one admin user with a generated password (``[core] simple_auth_manager_users`` and
a passwords file written before the api-server starts), so the API is not open to anyone on the machine,
as it would be with ``simple_auth_manager_all_admins``. ``/api/v2/monitor/health`` needs no token.
"""

from __future__ import annotations

import time
from typing import Any

import requests

TERMINAL_TASK_STATES = frozenset({"success", "failed", "skipped", "upstream_failed", "removed"})
TERMINAL_RUN_STATES = frozenset({"success", "failed"})


class AirflowAPIError(RuntimeError):
    def __init__(self, method: str, path: str, status: int, body: str) -> None:
        super().__init__(f"{method} {path} answered {status}: {body[:2000]}")
        self.status = status


class WaitTimeout(AssertionError):
    """A state did not come within the time allowed (an AssertionError, so pytest shows it as a failure)."""


class AirflowAPI:
    def __init__(self, base_url: str, username: str, password: str, timeout: float = 15.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.username = username
        self.password = password
        self.timeout = timeout
        self.session = requests.Session()
        self.session.trust_env = False  # loopback only: never through a proxy from the environment

    # -- plumbing ---------------------------------------------------------------------------------
    def login(self) -> None:
        answer = self.session.post(
            f"{self.base_url}/auth/token",
            json={"username": self.username, "password": self.password},
            timeout=self.timeout,
        )
        if answer.status_code != 201:
            raise AirflowAPIError("POST", "/auth/token", answer.status_code, answer.text)
        self.session.headers["Authorization"] = f"Bearer {answer.json()['access_token']}"

    def request(self, method: str, path: str, prefix: str = "/api/v2", **kwargs: Any) -> requests.Response:
        """Call ``{prefix}{path}``; log in on first use and again once if the token was refused."""
        if "Authorization" not in self.session.headers:
            self.login()
        url = f"{self.base_url}{prefix}{path}"
        answer = self.session.request(method, url, timeout=self.timeout, **kwargs)
        if answer.status_code == 401:
            self.login()
            answer = self.session.request(method, url, timeout=self.timeout, **kwargs)
        if answer.status_code >= 400:
            raise AirflowAPIError(method, path, answer.status_code, answer.text)
        return answer

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params=params).json()

    # -- health and DAGs --------------------------------------------------------------------------
    def health(self) -> dict[str, Any]:
        answer = self.session.get(f"{self.base_url}/api/v2/monitor/health", timeout=self.timeout)
        answer.raise_for_status()
        health: dict[str, Any] = answer.json()
        return health

    def hook_meta(self) -> list[dict[str, Any]]:
        """What the UI's connection form is drawn from: every connection type's fields (``/ui``, not REST)."""
        meta: list[dict[str, Any]] = self.request("GET", "/connections/hook_meta", prefix="/ui").json()
        return meta

    def dags(self) -> list[dict[str, Any]]:
        dags: list[dict[str, Any]] = self.get("/dags", limit=1000)["dags"]
        return dags

    def import_errors(self) -> list[dict[str, Any]]:
        errors: list[dict[str, Any]] = self.get("/importErrors", limit=1000)["import_errors"]
        return errors

    def unpause(self, dag_id: str) -> dict[str, Any]:
        dag: dict[str, Any] = self.request("PATCH", f"/dags/{dag_id}", json={"is_paused": False}).json()
        return dag

    # -- runs, task instances, XCom, logs ---------------------------------------------------------
    def trigger(
        self, dag_id: str, conf: dict[str, Any] | None = None, logical_date: str | None = None
    ) -> str:
        """Start a manual run now (``logical_date`` null, as Airflow 3 allows); return its run id."""
        body = {"logical_date": logical_date, "conf": conf or {}}
        run: dict[str, Any] = self.request("POST", f"/dags/{dag_id}/dagRuns", json=body).json()
        run_id: str = run["dag_run_id"]
        return run_id

    def dag_run(self, dag_id: str, run_id: str) -> dict[str, Any]:
        run: dict[str, Any] = self.get(f"/dags/{dag_id}/dagRuns/{run_id}")
        return run

    def dag_runs(self, dag_id: str, run_type: str | None = None) -> list[dict[str, Any]]:
        params: dict[str, Any] = {"limit": 100}
        if run_type is not None:
            params["run_type"] = [run_type]
        runs: list[dict[str, Any]] = self.get(f"/dags/{dag_id}/dagRuns", **params)["dag_runs"]
        return runs

    def task_instance(self, dag_id: str, run_id: str, task_id: str) -> dict[str, Any]:
        ti: dict[str, Any] = self.get(f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}")
        return ti

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        tis: list[dict[str, Any]] = self.get(f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances")[
            "task_instances"
        ]
        return tis

    def pool(self, name: str = "default_pool") -> dict[str, Any]:
        pool: dict[str, Any] = self.get(f"/pools/{name}")
        return pool

    def xcom(
        self, dag_id: str, run_id: str, task_id: str, key: str = "return_value", map_index: int = -1
    ) -> Any:
        path = f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/{key}"
        return self.get(path, map_index=map_index)["value"]

    def set_variable(self, key: str, value: str) -> None:
        """Create an Airflow Variable, as an operator would in the UI (the value is stored as given)."""
        self.request("POST", "/variables", json={"key": key, "value": value})

    def task_log(
        self, dag_id: str, run_id: str, task_id: str, try_number: int = 1, map_index: int = -1
    ) -> str:
        """The task's whole log as text: one line per entry, the event first, then every other field."""
        path = f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/logs/{try_number}"
        entries = self.get(path, full_content=True, map_index=map_index)["content"]
        return "\n".join(_log_line(entry) for entry in entries)

    def run_logs(self, dag_id: str, run_id: str) -> dict[str, str]:
        """Every task's log of a run (each try), by task id (``task[i]`` when mapped): to scan for secrets."""
        logs: dict[str, str] = {}
        for ti in self.task_instances(dag_id, run_id):
            task_id, map_index = ti["task_id"], ti["map_index"]
            key = task_id if map_index < 0 else f"{task_id}[{map_index}]"
            tries = range(1, ti["try_number"] + 1)
            logs[key] = "\n".join(self.task_log(dag_id, run_id, task_id, n, map_index) for n in tries)
        return logs

    # -- human in the loop (Airflow 3.1+: the standard provider's HITL operators) ------------------
    def hitl_detail(self, dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> dict[str, Any]:
        """What a person is asked (subject, body, options) and, once answered, the answer."""
        detail: dict[str, Any] = self.get(
            f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/{map_index}/hitlDetails"
        )
        return detail

    def respond(
        self, dag_id: str, run_id: str, task_id: str, chosen: list[str], map_index: int = -1
    ) -> dict[str, Any]:
        """Answer a waiting HITL task as the logged-in user, as the Required Actions page does."""
        path = f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/{map_index}/hitlDetails"
        answer: dict[str, Any] = self.request(
            "PATCH", path, json={"chosen_options": chosen, "params_input": {}}
        ).json()
        return answer

    # -- waiting ----------------------------------------------------------------------------------
    def wait_for_task_state(
        self, dag_id: str, run_id: str, task_id: str, state: str, timeout: float = 60.0
    ) -> dict[str, Any]:
        """Poll until the task instance is in ``state``; fail at once if it ends in another state."""
        deadline = time.monotonic() + timeout
        while True:
            ti = self.task_instance(dag_id, run_id, task_id)
            if ti["state"] == state:
                return ti
            if ti["state"] in TERMINAL_TASK_STATES:
                raise AssertionError(f"{task_id} ended {ti['state']}, not {state}:\n{self._logs(ti)}")
            if time.monotonic() > deadline:
                raise WaitTimeout(f"{task_id} still {ti['state']} after {timeout:.0f} s, not {state}")
            time.sleep(0.2)

    def wait_for_run(
        self, dag_id: str, run_id: str, state: str = "success", timeout: float = 90.0
    ) -> dict[str, Any]:
        """Poll until the run is in ``state``; on another end state, fail with every task's state and log."""
        deadline = time.monotonic() + timeout
        while True:
            run = self.dag_run(dag_id, run_id)
            if run["state"] == state:
                return run
            if run["state"] in TERMINAL_RUN_STATES or time.monotonic() > deadline:
                report = "\n".join(self._logs(ti) for ti in self.task_instances(dag_id, run_id))
                raise WaitTimeout(f"run {run_id} of {dag_id} is {run['state']}, not {state}:\n{report}")
            time.sleep(0.25)

    def wait_for_first_run(
        self, dag_id: str, run_type: str = "scheduled", state: str = "success", timeout: float = 90.0
    ) -> dict[str, Any]:
        """Poll until a run of ``run_type`` exists (the scheduler made one); return it once in ``state``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            runs = self.dag_runs(dag_id, run_type=run_type)
            if runs:
                return self.wait_for_run(dag_id, runs[0]["dag_run_id"], state, deadline - time.monotonic())
            time.sleep(0.25)
        raise WaitTimeout(f"no {run_type} run of {dag_id} within {timeout:.0f} s")

    def _logs(self, ti: dict[str, Any]) -> str:
        head = f"--- {ti['task_id']}: {ti['state']} (try {ti['try_number']})"
        if ti["try_number"] < 1:
            return head
        try:
            where = (ti["dag_id"], ti["dag_run_id"], ti["task_id"])
            return f"{head}\n{self.task_log(*where, ti['try_number'], ti['map_index'])}"
        except AirflowAPIError as error:
            return f"{head}\n(no log: {error})"


def _log_line(entry: Any) -> str:
    if not isinstance(entry, dict):
        return str(entry)
    rest = " ".join(f"{key}={value}" for key, value in entry.items() if key != "event")
    return f"{entry.get('event', '')} {rest}".rstrip()
