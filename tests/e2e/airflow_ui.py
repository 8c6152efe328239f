"""Airflow's own UI (the React app the api-server serves), driven in Chromium: sign in, add and edit a
connection through its form, press a connection's Test button.

Selectors are what the UI shows a user, and the same on Airflow 3.1, 3.2 and 3.3 (read from each
version's UI, ``airflow/ui`` in its source): the simple auth manager's "Username" / "Password" / "Sign
in"; the "Add Connection", "Edit Connection" and "Test Connection" buttons (``aria-label``; the last
two once per row of the connections list); in the form dialog the ``connection_id`` input, the
connection-type combobox (react-select: type the hook name, Enter), the standard fields by the labels
the provider gives them, and the extra fields (``element_<name>``) inside the collapsed "Extra Fields"
section. The Test button sends the row's connection to ``POST /api/v2/connections/test`` (the
api-server runs the hook's ``test_connection``; the UI sends the password as the list shows it,
``***``, and the api-server uses the stored one), then turns its icon green or red; a failure also
raises a toast with the hook's message.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from playwright.sync_api import Locator, Page

if TYPE_CHECKING:
    from tests.e2e.harness import AirflowStack

# The form's labels for the standard fields: the provider's relabelling (get_provider_info).
HOST, LOGIN, PASSWORD = "API URL", "Parent account ID", "Private key (PEM)"
HOOK_NAME = "Powered by CData"
TEST_ROUTE = "/api/v2/connections/test"


@dataclass
class ButtonOutcome:
    """What the Test button got back from the api-server: the hook's ``status`` and ``message``, or
    ``refused`` when the api-server would not run the test at all (``message`` then is its reason)."""

    status: bool
    message: str
    refused: bool = False


def sign_in(page: Page, api_url: str, username: str, password: str) -> None:
    """Open the connections list; the UI sends an anonymous user to its sign-in page first."""
    page.goto(f"{api_url}/connections")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/connections")


def add_cdata_connection(
    page: Page,
    conn_id: str,
    *,
    host: str,
    login: str,
    private_pem: str,
    account_id: str,
    screenshot: Path | None = None,
) -> Locator:
    """Fill the Add Connection form as a user does (the PEM pasted into the password field) and
    return the open dialog, ready to save. ``screenshot``: the dialog with the standard fields filled
    (Airflow 3.3 folds them away when the extra fields open)."""
    page.get_by_role("button", name="Add Connection").click()
    dialog = page.get_by_role("dialog")
    dialog.locator("input[name=connection_id]").fill(conn_id)
    kind = dialog.get_by_role("combobox")
    kind.click()
    kind.fill(HOOK_NAME)
    page.keyboard.press("Enter")
    dialog.get_by_label(HOST).fill(host)
    dialog.get_by_label(LOGIN).fill(login)
    dialog.get_by_label(PASSWORD).fill(private_pem)
    if screenshot is not None:
        dialog.screenshot(path=str(screenshot))
    dialog.get_by_role("button", name="Extra Fields", exact=True).click()
    dialog.locator("#element_account_id").fill(account_id)
    return dialog


def save(page: Page, dialog: Locator, method: str) -> dict[str, Any]:
    """Press the dialog's Save; return the connection as the api-server stored it (its answer)."""
    with page.expect_response(
        lambda answer: "/api/v2/connections" in answer.url and answer.request.method == method
    ) as saved:
        dialog.get_by_role("button", name="Save").click()
    answer = saved.value
    assert answer.ok, f"{method} {answer.url}: {answer.status} {answer.text()}"
    dialog.wait_for(state="hidden")
    stored: dict[str, Any] = answer.json()
    return stored


def row(page: Page, conn_id: str) -> Locator:
    return page.get_by_role("row").filter(has_text=conn_id)


def open_edit(page: Page, conn_id: str) -> Locator:
    row(page, conn_id).get_by_role("button", name="Edit Connection").click()
    return page.get_by_role("dialog")


def press_test(page: Page, conn_id: str) -> ButtonOutcome:
    """Press the row's Test button (it must be enabled: ``[core] test_connection = Enabled``)."""
    button = row(page, conn_id).get_by_role("button", name="Test Connection")
    assert button.is_enabled(), "the Test button is disabled: [core] test_connection is not Enabled"
    with page.expect_response(lambda answer: answer.url.endswith(TEST_ROUTE)) as tested:
        button.click()
    answer = tested.value
    body = json.loads(answer.text())
    if answer.status == 400:
        return ButtonOutcome(status=False, message=str(body["detail"]), refused=True)
    assert answer.ok, f"POST {TEST_ROUTE}: {answer.status} {answer.text()}"
    return ButtonOutcome(status=bool(body["status"]), message=str(body["message"]))


def button_refuses_connections_without_a_port() -> bool:
    """Whether this Airflow's Test button refuses every connection that has no port (``cdata`` hides it).

    Airflow 3.3's UI sends the row's ``port: Number(connection.port)``, 0 for a stored NULL, and its
    api-server reuses the stored credentials (the UI sends the password as ``***``) only when host and
    port are the stored ones, and 0 is not NULL there: a 400, "The host or port to test differs from the
    stored connection", before any hook runs. Fixed upstream (apache/airflow pull request 73298) after
    3.3.2. Told from the installed api-server's own comparison, so a release with the fix is seen as
    fixed; 3.1 and 3.2 have no such check.
    """
    try:
        from airflow.api_fastapi.core_api.routes.public import connections
    except ImportError:  # pragma: no cover - every supported Airflow has this module
        return False
    same_endpoint = getattr(connections, "_same_endpoint", None)
    return same_endpoint is not None and not same_endpoint(0, None)


def cli_test(stack: AirflowStack, conn_id: str, name: str) -> ButtonOutcome:
    """``airflow connections test`` with the services' environment: the same hook ``test_connection``
    on the connection as the UI stored it, where the UI's own button cannot run it."""
    service = stack.processes.spawn(name, [sys.executable, "-m", "airflow", "connections", "test", conn_id])
    try:
        service.process.wait(timeout=120)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"airflow connections test took over 120 s:\n{service.log_tail()}") from None
    output = stack.service_log(name)
    if "Connection success!" in output:
        return ButtonOutcome(status=True, message=output)
    assert "Connection failed!" in output, output
    return ButtonOutcome(status=False, message=output)


def result_icon(page: Page, conn_id: str, colour: str) -> Locator:
    """The icon the Test button shows after a test: react-icons' FiWifi green, FiWifiOff red."""
    return row(page, conn_id).get_by_role("button", name="Test Connection").locator(f"svg[color={colour}]")
