"""Real Airflow 3 services as separate processes, on loopback, for the end-to-end suite.

``AirflowStack.start(...)`` makes a fresh AIRFLOW_HOME with a SQLite database (``airflow db migrate``),
then starts ``airflow api-server``, ``scheduler``, ``dag-processor`` and ``triggerer`` with LocalExecutor,
each in its own process group, and waits until the health endpoint reports every component healthy and
the dag-processor has parsed the DAG files. ``stop()`` ends them all by PID (see ``processes.py``).

Why SQLite is enough: Airflow 3.3 has no check against LocalExecutor on SQLite (``airflow standalone``
runs exactly that), it opens SQLite in WAL mode and retries "database is locked"; task processes talk to
the api-server's Execution API, not to the database. Postgres would add a server to start for nothing.

Why loopback and no network namespace: every listener here can be pinned to 127.0.0.1. The api-server
gets ``--host 127.0.0.1`` and a free port; the only other listeners Airflow opens, the log servers of the
scheduler and triggerer (``serve-logs``, bound to all interfaces on fixed ports 8793/8794), are switched
off with ``--skip-serve-logs``: with LocalExecutor every process writes its logs under the one
AIRFLOW_HOME, and the api-server reads them from disk. The scheduler's health-check server stays off
(its default). ``listening_sockets()`` lets a test prove that nothing listens anywhere but loopback. A
namespace would need pytest and the browser inside it as well, i.e. the whole test command under
``unshare -n``, which needs root and changes how everyone runs the tests.
"""

from __future__ import annotations

import base64
import json
import os
import random
import re
import secrets
import shutil
import socket
import sys
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
from starlette.types import ASGIApp, Receive, Scope, Send

from tests.e2e.api import AirflowAPI
from tests.e2e.processes import ProcessTree

REPO_ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO_ROOT / "artifacts" / "e2e"
ADMIN_USER = "e2e-admin"
SERVICES = ("api-server", "scheduler", "dag-processor", "triggerer")

# Settings that make a one-machine Airflow react in about a second instead of tens of seconds. Each one
# is a plain [section] option given as AIRFLOW__SECTION__OPTION in the services' environment.
SPEED_CONFIG = {
    # Heartbeats: health turns "healthy" after the first one; Airflow's default is 5 s.
    "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1",
    "AIRFLOW__SCHEDULER__JOB_HEARTBEAT_SEC": "1",
    "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": "1",
    # The scheduler loop sleeps this long when it found nothing to do (default 1 s).
    "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": "0.2",
    # The dag-processor lists the folder every refresh_interval (default 300 s) and re-parses a file at
    # most every min_file_process_interval (default 30 s); re-parsing more often only burns the 2 cores.
    "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
    "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "30",
    "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "1",
    "AIRFLOW__DAG_PROCESSOR__PRINT_STATS_INTERVAL": "300",
    "AIRFLOW__CORE__MIN_SERIALIZED_DAG_UPDATE_INTERVAL": "1",
    # Few worker processes on a 2-core machine; one api-server worker.
    "AIRFLOW__CORE__PARALLELISM": "4",
    "AIRFLOW__API__WORKERS": "1",
    # Fewer periodic chores competing for the cores during a two-minute run.
    "AIRFLOW__SCHEDULER__PARSING_CLEANUP_INTERVAL": "600",
    "AIRFLOW__SCHEDULER__ORPHANED_TASKS_CHECK_INTERVAL": "600",
    "AIRFLOW__SCHEDULER__POOL_METRICS_INTERVAL": "600",
}


# Any random-looking base64url value: 40 or more characters of that alphabet, with an upper-case letter, a
# lower-case letter and a digit among them. A JWT's signature is one (43 characters for HS256, 342 for
# RS256 with a 2048-bit key). Airflow 3.3's log processor `redact_jwt` replaces each "eyJ[.\w-]*" run in a
# string field (a whole JWT) with "eyJ***", but a signature on its own does not start with "eyJ" and
# passes. What Airflow's task logs hold besides (snake_case names, UUIDs, run ids, ISO dates, paths)
# never matches: they are short, lower-case, or broken up by "/", ":", "." or "+".
OPAQUE_VALUE = re.compile(r"(?<![\w-])(?=[\w-]*[A-Z])(?=[\w-]*[a-z])(?=[\w-]*\d)[\w-]{40,}(?![\w-])")


def pem_body_lines(pem: str) -> list[str]:
    """The base64 lines of a PEM key, the parts that must never show up in a log."""
    return [line for line in pem.splitlines() if line and not line.startswith("-----")]


def jwt_signature(token: str) -> str:
    """A JWT's third part: the one piece of it that Airflow's "eyJ" redaction cannot recognise."""
    return token.rsplit(".", 1)[-1]


def leaked_secrets(log: str, secrets: Iterable[str]) -> list[str]:
    """Which of ``secrets`` occur in ``log``, then every opaque base64url value it holds (see OPAQUE_VALUE).

    Empty means clean. ``secrets`` are exact strings: whole tokens, their signatures, PEM lines.
    """
    found = [f"secret {secret[:12]}...: {_around(log, secret)}" for secret in secrets if secret in log]
    found += [f"opaque value: {_around(log, match)}" for match in OPAQUE_VALUE.findall(log)]
    return found


def _around(text: str, part: str, width: int = 60) -> str:
    at = text.index(part)
    return repr(text[max(at - width, 0) : at + len(part) + width])


class BearerTokenRecorder:
    """ASGI middleware for the emulator's app: keep every bearer token a client sends, pass the request on.

    The emulator's own request log keeps only verified claims, on purpose; a test needs the exact tokens
    Airflow minted to prove they appear in no log. Added with ``app.add_middleware(BearerTokenRecorder,
    tokens=a_set)``, so it sees every request, including those the emulator rejects.
    """

    def __init__(self, app: ASGIApp, tokens: set[str]) -> None:
        self.app = app
        self.tokens = tokens

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            for name, value in scope["headers"]:
                scheme, _, token = value.decode("latin-1").partition(" ")
                if name == b"authorization" and scheme.lower() == "bearer" and token.strip():
                    self.tokens.add(token.strip())
        await self.app(scope, receive, send)


class StackError(RuntimeError):
    """The stack did not come up; the message holds the tail of each service's log."""


def _ephemeral_ports() -> range:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
    except (OSError, ValueError):
        low, high = "32768", "60999"
    return range(int(low), int(high) + 1)


def free_port() -> int:
    """A free loopback port below the kernel's ephemeral range.

    The api-server binds it some 20 s after it is picked. A port from the ephemeral range (what binding
    port 0 returns) may meanwhile become the local port of any outgoing connection on the machine, and
    the api-server would fail with "address in use"; ports below that range are only ever taken on purpose.
    """
    ephemeral = _ephemeral_ports()
    candidates = [port for port in range(20000, 32000) if port not in ephemeral]
    for port in random.sample(candidates, 50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise StackError("no free loopback port between 20000 and 32000")


def cdata_connection_env(
    base_url: str, parent_id: str, private_pem: str, account_id: str, conn_id: str = "cdata_default"
) -> dict[str, str]:
    """``AIRFLOW_CONN_<ID>`` in Airflow's JSON form: how the services get the ``cdata`` connection."""
    connection = {
        "conn_type": "cdata",
        "host": base_url,
        "login": parent_id,
        "password": private_pem,
        "extra": {"account_id": account_id},
    }
    return {f"AIRFLOW_CONN_{conn_id.upper()}": json.dumps(connection)}


def airflow_environment(home: Path, dags_folder: Path, api_port: int) -> dict[str, str]:
    """The services' environment: this Python's venv, a private AIRFLOW_HOME, loopback only.

    No PYTHONPATH to the repo, and the services run in AIRFLOW_HOME: they import the provider as it is
    installed in the venv (its entry point, its trigger's classpath), as a user's Airflow would.
    """
    api_url = f"http://127.0.0.1:{api_port}"
    venv_bin = str(Path(sys.executable).parent)
    env = {key: value for key, value in os.environ.items() if not key.startswith("AIRFLOW")}
    env.update(
        {
            "PATH": f"{venv_bin}:{env.get('PATH', '/usr/bin:/bin')}",
            "NO_PROXY": "127.0.0.1,localhost",
            "no_proxy": "127.0.0.1,localhost",
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(home / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{api_url}/execution/",
            "AIRFLOW__API__BASE_URL": api_url,
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(api_port),
            # One secret for all components: left to Airflow, each process that writes a new airflow.cfg
            # would generate its own and the api-server would refuse the workers' tokens.
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
            "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(32),
            "AIRFLOW__CORE__FERNET_KEY": base64.urlsafe_b64encode(secrets.token_bytes(32)).decode(),
            "AIRFLOW__CORE__AUTH_MANAGER": (
                "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
            ),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{ADMIN_USER}:admin",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / "passwords.json"),
            "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
            "AIRFLOW__SCHEDULER__CATCHUP_BY_DEFAULT": "False",
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs"),
            # The UI's Test button for connections (Airflow's default "Disabled" greys it out): the
            # form test presses it.
            "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",
            **SPEED_CONFIG,
        }
    )
    return env


def dag_files(dags_folder: Path) -> set[str]:
    """The files the dag-processor parses: .py files holding both "airflow" and "dag" (its safe mode)."""
    files = set()
    for path in dags_folder.rglob("*.py"):
        text = path.read_bytes().lower()
        if b"airflow" in text and b"dag" in text and "__pycache__" not in path.parts:
            files.add(str(path.relative_to(dags_folder)))
    return files


@dataclass
class AirflowStack:
    """Running Airflow services; ``api`` is a logged-in REST client, ``emulator_url`` the CData API root."""

    home: Path
    dags_folder: Path
    api_url: str
    api: AirflowAPI
    processes: ProcessTree
    emulator_url: str | None = None
    timings: dict[str, float] = field(default_factory=dict)  # seconds since start() began, for reports

    @classmethod
    def start(
        cls,
        home: Path,
        dags_folder: Path,
        env: Mapping[str, str] | None = None,
        emulator_url: str | None = None,
        expect_dags: Iterable[str] = (),
        timeout: float = 120.0,
    ) -> AirflowStack:
        """Start the four services; return once healthy and every DAG file is parsed (or ``expect_dags``)."""
        home.mkdir(parents=True, exist_ok=True)
        api_port = free_port()
        password = secrets.token_urlsafe(16)
        # The simple auth manager generates passwords for users missing from this file; ours is known.
        (home / "passwords.json").write_text(json.dumps({ADMIN_USER: password}))
        service_env = {**airflow_environment(home, dags_folder.resolve(), api_port), **(env or {})}
        processes = ProcessTree(home / "services", service_env, cwd=home)
        api_url = f"http://127.0.0.1:{api_port}"
        stack = cls(
            home, dags_folder, api_url, AirflowAPI(api_url, ADMIN_USER, password), processes, emulator_url
        )
        began = time.monotonic()
        try:
            python = [sys.executable, "-m", "airflow"]
            processes.run("db-migrate", [*python, "db", "migrate"], timeout=timeout)
            stack.timings["db_migrate"] = time.monotonic() - began
            processes.spawn(
                "api-server", [*python, "api-server", "--host", "127.0.0.1", "--port", str(api_port)]
            )
            processes.spawn("scheduler", [*python, "scheduler", "--skip-serve-logs"])
            processes.spawn("dag-processor", [*python, "dag-processor"])
            processes.spawn("triggerer", [*python, "triggerer", "--skip-serve-logs"])
            deadline = time.monotonic() + timeout
            stack.wait_until_healthy(deadline)
            stack.timings["healthy"] = time.monotonic() - began
            stack.wait_until_parsed(deadline, set(expect_dags))
            stack.timings["parsed"] = time.monotonic() - began
        except BaseException:
            stack.stop()
            raise
        return stack

    # -- readiness --------------------------------------------------------------------------------
    def _check_running(self) -> None:
        for name in SERVICES:
            service = self.processes.services[name]
            if not service.running():
                raise StackError(
                    f"airflow {name} exited with {service.process.returncode}:\n{service.log_tail()}"
                )

    def _fail(self, what: str) -> StackError:
        tails = "\n".join(f"=== {name}\n{self.processes.services[name].log_tail(15)}" for name in SERVICES)
        return StackError(f"{what}\n{tails}")

    def wait_until_healthy(self, deadline: float) -> dict[str, Any]:
        """Until /api/v2/monitor/health reports the scheduler, triggerer and dag-processor healthy."""
        health: dict[str, Any] = {}
        warmed = False
        while time.monotonic() < deadline:
            self._check_running()
            try:
                health = self.api.health()
            except requests.RequestException:
                health = {}
            if health and not warmed:
                self._warm_up_execution_api(deadline)
                warmed = True
            if health and all(part.get("status") == "healthy" for part in health.values()):
                return health
            time.sleep(0.25)
        raise self._fail(f"Airflow was not healthy in time: {health}")

    def _warm_up_execution_api(self, deadline: float) -> None:
        """Build the api-server's Execution API app now rather than on a task's first call.

        It is built lazily on the first request under /execution (Cadwyn generates its versioned routes),
        which costs 5-10 s of CPU here; without this, the first task of a run sits in "queued" that long
        while its supervisor waits for ``PATCH /execution/task-instances/{id}/run``.
        """
        timeout = max(deadline - time.monotonic(), 1.0)
        answer = requests.get(f"{self.api_url}/execution/health", timeout=timeout)
        if answer.status_code != 200:
            raise self._fail(f"the Execution API answered {answer.status_code}: {answer.text}")

    def wait_until_parsed(self, deadline: float, expect_dags: set[str]) -> None:
        """Until every DAG file (or each DAG id asked for) is serialised; fail at once on import errors."""
        want_files = dag_files(self.dags_folder)
        seen: set[str] = set()
        while time.monotonic() < deadline:
            self._check_running()
            errors = self.api.import_errors()
            if errors:
                details = "\n".join(f"{e['filename']}:\n{e['stack_trace']}" for e in errors)
                raise StackError(f"DAG import errors:\n{details}")
            dags = self.api.dags()
            seen = {dag["relative_fileloc"] for dag in dags} | {dag["dag_id"] for dag in dags}
            if (expect_dags or want_files) <= seen:
                return
            time.sleep(0.25)
        raise self._fail(f"DAGs not parsed in time: want {expect_dags or want_files}, have {seen}")

    # -- inspection -------------------------------------------------------------------------------
    def pids(self) -> list[int]:
        """Every live process of the stack, including the workers, supervisors and parsers they fork."""
        return self.processes.alive()

    def service_log(self, name: str) -> str:
        return (self.processes.log_dir / f"{name}.log").read_text(errors="replace")

    # -- teardown ---------------------------------------------------------------------------------
    def stop(self, grace: float = 5.0) -> None:
        """SIGTERM, then SIGKILL by PID; raises LeftBehindError if any process of the stack survived.

        The grace is short on purpose: the scheduler and dag-processor exit in 1-3 s, but the triggerer
        waits 10 s for its runner and the api-server ~5 s for uvicorn; this throwaway database needs no
        orderly goodbye.
        """
        self.api.session.close()  # an open keep-alive connection holds up uvicorn's shutdown
        self.processes.stop(grace)

    def keep_logs(self, destination: Path) -> None:
        """Copy the services' output and the task logs (a CI artefact)."""
        shutil.rmtree(destination, ignore_errors=True)
        # dirs_exist_ok: another test run on the machine may be writing the same artefact folder.
        shutil.copytree(self.processes.log_dir, destination / "services", dirs_exist_ok=True)
        if (self.home / "logs").exists():
            shutil.copytree(self.home / "logs", destination / "task-logs", dirs_exist_ok=True)
