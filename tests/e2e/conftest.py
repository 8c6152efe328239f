"""Fixtures of the end-to-end suite: real Airflow services, the emulator, a headless Chromium.

A test module picks its DAGs by overriding ``airflow_dags_folder`` (default: ``dags_examples/``) and, if
it needs more, ``airflow_env`` (default: ``AIRFLOW_CONN_CDATA_DEFAULT`` for this module's emulator) and
``airflow_expected_dags``.
``airflow_stack`` then starts one set of services per module and stops it after the module's last test.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from airflow_provider_cdata.emulator import Emulator, KeyPair
from tests.conftest import CData
from tests.e2e.browser import launch_chromium, route_outside_loopback
from tests.e2e.harness import (
    ARTIFACTS,
    REPO_ROOT,
    AirflowStack,
    BearerTokenRecorder,
    cdata_connection_env,
)
from tests.e2e.processes import descendants


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    """``artifacts/e2e/`` in the repo (gitignored): screenshots and service logs that CI keeps."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


@dataclass
class E2ECData(CData):
    """The e2e emulator; ``bearer_tokens`` holds every JWT the Airflow services sent it, verbatim."""

    bearer_tokens: set[str]


@pytest.fixture(scope="module")
def e2e_cdata(keys: KeyPair) -> Iterator[E2ECData]:
    """An emulator in this pytest process, on 127.0.0.1, with one parent and one child account.

    Its app also records each bearer token it receives (here, not in the emulator package, which keeps
    no token on purpose): the exact strings the secret scan of the task logs looks for.
    """
    tokens: set[str] = set()
    emulator = Emulator()
    emulator.app.add_middleware(BearerTokenRecorder, tokens=tokens)
    with emulator:
        parent_id = emulator.register_parent(keys.public_pem)
        account_id = emulator.add_account(parent_id, external_id="e2e-customer")["id"]
        yield E2ECData(
            emulator=emulator,
            keys=keys,
            parent_id=parent_id,
            account_id=account_id,
            bearer_tokens=tokens,
        )


@pytest.fixture(scope="module")
def airflow_dags_folder() -> Path:
    return REPO_ROOT / "dags_examples"


@pytest.fixture(scope="module")
def airflow_env(e2e_cdata: E2ECData) -> dict[str, str]:
    """Extra environment of the services: the ``cdata_default`` connection, pointing at the emulator."""
    return cdata_connection_env(
        e2e_cdata.base_url, e2e_cdata.parent_id, e2e_cdata.keys.private_pem, e2e_cdata.account_id
    )


@pytest.fixture(scope="module")
def airflow_expected_dags() -> tuple[str, ...]:
    """DAG ids to wait for; empty: wait until every DAG file of the folder is parsed."""
    return ()


@pytest.fixture(scope="module")
def airflow_stack(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    airflow_dags_folder: Path,
    airflow_env: dict[str, str],
    airflow_expected_dags: tuple[str, ...],
    e2e_cdata: E2ECData,
    artifacts_dir: Path,
) -> Iterator[AirflowStack]:
    """Scheduler, dag-processor, triggerer and api-server for this module; stopped (and checked) after it."""
    home = tmp_path_factory.mktemp("airflow-home")
    stack = AirflowStack.start(
        home,
        airflow_dags_folder,
        env=airflow_env,
        emulator_url=e2e_cdata.base_url,
        expect_dags=airflow_expected_dags,
    )
    print(f"Airflow up in {stack.timings['parsed']:.1f} s ({stack.timings})")
    try:
        yield stack
    finally:
        stopping = time.monotonic()
        try:
            stack.stop()  # raises LeftBehindError, failing the module, if a process survived
        finally:
            stack.keep_logs(artifacts_dir / request.module.__name__.rsplit(".", 1)[-1])
        print(f"Airflow stopped in {time.monotonic() - stopping:.1f} s, no process left")


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Headless Debian Chromium; the suite fails (not skips) when it is missing.

    Per module, not per session: while Playwright's sync API is started, it marks its event loop as
    running in this thread between calls, and every later test that calls ``asyncio.run()`` (dag.test()
    running a trigger in line, say) fails with "cannot be called from a running event loop".
    """
    driver = sync_playwright().start()
    try:
        try:
            chromium = launch_chromium(driver)
        except FileNotFoundError as missing:
            pytest.fail(str(missing), pytrace=False)
        yield chromium
        chromium.close()
    finally:
        driver.stop()
    left = {pid: cmd for pid, cmd in descendants().items() if "chrom" in cmd or "playwright" in cmd}
    assert not left, f"browser processes left behind: {left}"


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh page whose requests outside loopback get a stub answer instead of leaving the machine."""
    context = browser.new_context(viewport={"width": 900, "height": 700})
    route_outside_loopback(context)
    try:
        yield context.new_page()
    finally:
        context.close()
