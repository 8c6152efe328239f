"""docker-compose.yaml and docker/Dockerfile: what `docker compose up` must start, checked without Docker.

CI also runs the Compose validators on the file (docker/validate-compose.sh); these tests check what a
schema cannot: that every Airflow component is there with the CeleryExecutor, that the DAGs are mounted,
and that cdata_default reaches the emulator service with a key the emulator wrote.
"""

from __future__ import annotations

import json
import re
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import urlsplit

import pytest
import yaml

from airflow_provider_cdata.emulator.__main__ import build_parser
from airflow_provider_cdata.emulator.process import emulator_process
from airflow_provider_cdata.emulator.server import STOP_SIGNALS, STOP_TIMEOUT_SECONDS

REPO = Path(__file__).resolve().parent.parent
COMPOSE_FILE = REPO / "docker-compose.yaml"
DOCKERFILE = REPO / "docker" / "Dockerfile"
EMULATOR = "cdata-emulator"
EMULATOR_MODULE = ["python", "-m", "airflow_provider_cdata.emulator"]
# What each Airflow component's container runs (the image's entrypoint prefixes `airflow`).
AIRFLOW_COMMANDS = ("api-server", "scheduler", "dag-processor", "triggerer", "celery worker")
DAGS_FOLDER = "/opt/airflow/dags"  # the official image's AIRFLOW__CORE__DAGS_FOLDER


class Mount(NamedTuple):
    source: str
    target: str
    read_only: bool


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text())  # resolves the <<: merges
    return loaded


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = compose["services"]
    return found


def command_of(service: dict[str, Any]) -> str:
    command = service.get("command", "")
    return " ".join(command) if isinstance(command, list) else str(command)


def airflow_services(services: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Services that run an Airflow component, plus the init service (it runs db migrate)."""
    return {
        name: service
        for name, service in services.items()
        if command_of(service) in AIRFLOW_COMMANDS or is_init(service)
    }


def is_init(service: dict[str, Any]) -> bool:
    return str(service.get("environment", {}).get("_AIRFLOW_DB_MIGRATE", "")).lower() == "true"


def mounts(service: dict[str, Any]) -> list[Mount]:
    parsed = []
    for volume in service.get("volumes", []):
        source, target, *mode = volume.split(":")
        parsed.append(Mount(source, target, mode == ["ro"]))
    return parsed


def emulator_args(services: dict[str, dict[str, Any]]) -> list[str]:
    command = services[EMULATOR]["command"]
    assert command[:3] == EMULATOR_MODULE, command
    args: list[str] = command[3:]
    return args


def stop_grace_seconds(services: dict[str, dict[str, Any]]) -> float:
    """The emulator service's ``stop_grace_period`` (``10s``, ``1m30s``; Compose's default is 10 s)."""
    text = str(services[EMULATOR].get("stop_grace_period", "10s"))
    parts = re.fullmatch(r"(?:(\d+)m)?(?:(\d+(?:\.\d+)?)s)?", text)
    assert parts, f"unexpected stop_grace_period {text!r}"
    return int(parts[1] or 0) * 60 + float(parts[2] or 0)


def cdata_default(service: dict[str, Any]) -> dict[str, Any]:
    value: dict[str, Any] = json.loads(service["environment"]["AIRFLOW_CONN_CDATA_DEFAULT"])
    return value


# -- the services ---------------------------------------------------------------------------------
@pytest.mark.parametrize("command", AIRFLOW_COMMANDS)
def test_every_airflow_component_runs_from_the_provider_image(
    services: dict[str, dict[str, Any]], command: str
) -> None:
    running = [name for name, service in services.items() if command_of(service) == command]
    assert running, f"no service runs `airflow {command}`"
    for name in running:
        build = services[name]["build"]
        assert (build["context"], build["dockerfile"]) == (".", "docker/Dockerfile"), name


def test_the_triggerer_runs_so_deferrable_sensors_can_wait(services: dict[str, dict[str, Any]]) -> None:
    triggerers = [name for name, service in services.items() if command_of(service) == "triggerer"]
    assert triggerers == ["airflow-triggerer"]
    assert "cdata-demo-key" in {m.source for m in mounts(services["airflow-triggerer"])}, (
        "the trigger mints tokens in the triggerer, so it needs the key too"
    )


def test_postgres_and_redis_are_healthchecked_and_awaited(services: dict[str, dict[str, Any]]) -> None:
    assert services["postgres"]["image"].startswith("postgres:16")
    assert services["redis"]["image"].startswith("redis:7.2")
    for backend in ("postgres", "redis"):
        assert "healthcheck" in services[backend], backend
        for name, service in airflow_services(services).items():
            assert service["depends_on"][backend]["condition"] == "service_healthy", (name, backend)


def test_an_init_service_migrates_the_db_and_the_components_wait_for_it(
    services: dict[str, dict[str, Any]],
) -> None:
    inits = [name for name, service in services.items() if is_init(service)]
    assert inits == ["airflow-init"]
    assert services["airflow-init"]["environment"]["_AIRFLOW_WWW_USER_CREATE"] == "true"
    for name, service in airflow_services(services).items():
        if name != "airflow-init":
            assert service["depends_on"]["airflow-init"]["condition"] == "service_completed_successfully"


# -- the executor and the shared configuration -------------------------------------------------------
def test_all_airflow_services_use_the_celery_executor_on_postgres_and_redis(
    services: dict[str, dict[str, Any]],
) -> None:
    for name, service in airflow_services(services).items():
        env = service["environment"]
        assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor", name
        assert urlsplit(env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]).hostname == "postgres", name
        assert urlsplit(env["AIRFLOW__CELERY__RESULT_BACKEND"]).hostname == "postgres", name
        assert urlsplit(env["AIRFLOW__CELERY__BROKER_URL"]).hostname == "redis", name
        assert env["AIRFLOW__CORE__LOAD_EXAMPLES"] == "false", name


def test_components_share_the_execution_api_url_and_secrets(services: dict[str, dict[str, Any]]) -> None:
    shared = (
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL",
        "AIRFLOW__API_AUTH__JWT_SECRET",
        "AIRFLOW__API__SECRET_KEY",
    )
    values = {
        key: {str(s["environment"].get(key)) for s in airflow_services(services).values()} for key in shared
    }
    for key, seen in values.items():
        assert len(seen) == 1, (key, seen)
        assert "None" not in seen, key
    (execution_url,) = values["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"]
    parts = urlsplit(execution_url)
    assert parts.hostname in services
    assert command_of(services[parts.hostname]) == "api-server"
    assert parts.path == "/execution/"
    assert f"{parts.port}:{parts.port}" in services[parts.hostname]["ports"]


def test_the_example_dags_are_the_dags_folder_of_every_airflow_service(
    services: dict[str, dict[str, Any]],
) -> None:
    for name, service in airflow_services(services).items():
        assert Mount("./dags_examples", DAGS_FOLDER, False) in mounts(service), name
        assert service["environment"].get("AIRFLOW__CORE__DAGS_FOLDER", DAGS_FOLDER) == DAGS_FOLDER


# -- cdata_default and the emulator --------------------------------------------------------------------
def test_cdata_default_points_at_the_emulator_service_with_its_demo_ids(
    services: dict[str, dict[str, Any]],
) -> None:
    args = build_parser().parse_args(emulator_args(services))
    assert args.demo
    assert args.host == "0.0.0.0"
    for name, service in airflow_services(services).items():
        connection = cdata_default(service)
        host = urlsplit(connection["host"])
        assert connection["conn_type"] == "cdata", name
        assert (host.scheme, host.hostname, host.port, host.path) == ("http", EMULATOR, args.port, "/api")
        assert connection["login"] == args.demo_parent_id
        assert connection["extra"]["account_id"] == args.demo_account_id
        # Plain http to a host that is not loopback: the hook refuses it unless told otherwise.
        assert connection["extra"]["allow_insecure_http"] is True
        assert "password" not in connection, "no private key in the compose file"


def test_the_key_the_emulator_writes_is_mounted_read_only_where_cdata_default_reads_it(
    services: dict[str, dict[str, Any]], compose: dict[str, Any]
) -> None:
    key_file = Path(build_parser().parse_args(emulator_args(services)).demo_key_file)
    (writer,) = [m for m in mounts(services[EMULATOR]) if m.target == str(key_file.parent)]
    assert not writer.read_only
    assert writer.source in compose["volumes"], "a named volume, not a directory of the repository"
    assert services[EMULATOR]["user"] == services["airflow-worker"]["user"], "the key file is mode 600"
    for name, service in airflow_services(services).items():
        assert cdata_default(service)["extra"]["private_key_path"] == str(key_file), name
        assert Mount(writer.source, str(key_file.parent), True) in mounts(service), name


def test_airflow_waits_for_a_healthy_emulator_which_connect_links_reach_from_the_host(
    services: dict[str, dict[str, Any]],
) -> None:
    emulator = services[EMULATOR]
    args = build_parser().parse_args(emulator_args(services))
    assert f"http://localhost:{args.port}/_emulator/health" in emulator["healthcheck"]["test"]
    assert args.public_url == f"http://localhost:{args.port}"
    assert f"127.0.0.1:{args.port}:{args.port}" in emulator["ports"], "published on loopback only"
    for name, service in airflow_services(services).items():
        assert service["depends_on"][EMULATOR]["condition"] == "service_healthy", name


def test_compose_stops_the_emulator_with_a_signal_it_handles_and_waits_longer_than_it_takes(
    services: dict[str, dict[str, Any]],
) -> None:
    emulator = services[EMULATOR]
    assert getattr(signal, emulator.get("stop_signal", "SIGTERM")) in STOP_SIGNALS
    assert stop_grace_seconds(services) >= 2 * STOP_TIMEOUT_SECONDS, "room before Docker's SIGKILL"


@pytest.fixture
def compose_emulator(services: dict[str, dict[str, Any]], tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """The emulator started with the compose command, moved to loopback, a free port and tmp_path."""
    key_file = tmp_path / "cdata-demo.pem"
    # argparse keeps the last value of a repeated flag: these override the container's paths and port.
    local = ["--host", "127.0.0.1", "--port", "0", "--state", str(tmp_path / "state.json")]
    local += ["--demo-key-file", str(key_file)]
    # Stopped as `docker compose stop` does: one SIGTERM (the service's stop_signal), kill after the grace.
    with emulator_process(
        *emulator_args(services),
        *local,
        stop_signal=signal.SIGTERM,
        stop_timeout=stop_grace_seconds(services),
    ) as emu:
        yield emu.api_url, key_file


def test_cdata_default_works_with_the_hook_against_the_compose_emulator(
    services: dict[str, dict[str, Any]],
    compose_emulator: tuple[str, Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from airflow_provider_cdata.hooks import CDataHook

    base_url, key_file = compose_emulator
    connection = cdata_default(services["airflow-worker"])
    connection["host"] = base_url  # the service name only resolves inside the compose network
    connection["extra"]["private_key_path"] = str(key_file)
    monkeypatch.setenv("AIRFLOW_CONN_CDATA_DEFAULT", json.dumps(connection))
    hook = CDataHook()
    try:
        assert hook.list_connections() == []
        link = hook.create_connection("Salesforce", "https://app.example.com/onboarded")
    finally:
        hook.close()
    assert link.startswith("http://localhost:8765/"), "connect links open in the host's browser"


# -- the image -------------------------------------------------------------------------------------
def dockerfile_instructions() -> list[str]:
    """The Dockerfile's instructions, comments dropped and continuation lines joined."""
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text())
    return [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def test_the_image_is_airflow_3_3_2_with_the_provider_installed_from_the_repository() -> None:
    instructions = dockerfile_instructions()
    args = dict(re.findall(r"^ARG (\w+)=(\S+)", "\n".join(instructions), flags=re.MULTILINE))
    (base,) = [line.split()[1] for line in instructions if line.startswith("FROM ")]
    base = re.sub(r"\$\{(\w+)\}", lambda match: args[match.group(1)], base)
    assert re.fullmatch(r"apache/airflow:3\.3\.2-python3\.1[12]", base), base

    # COPY [--flags] SRC... DEST: the project directory is where pyproject.toml goes.
    copies = {
        src: copy[-1].rstrip("/")
        for copy in (line.split()[1:] for line in instructions if line.startswith("COPY "))
        for src in copy[:-1]
        if not src.startswith("--")
    }
    project_dir = copies["pyproject.toml"]
    assert copies["airflow_provider_cdata"] == f"{project_dir}/airflow_provider_cdata"
    installs = [line for line in instructions if line.startswith("RUN ") and "pip install" in line]
    assert any(f'"{project_dir}[emulator]"' in line for line in installs), installs
    assert any('"apache-airflow==${AIRFLOW_VERSION}"' in line for line in installs), "Airflow stays pinned"
