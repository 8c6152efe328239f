"""Debian's Chromium, headless, driven by Playwright for Python; no browser is downloaded.

``pip install playwright`` brings the Python API and its driver but no browser; Chromium comes from apt
(``scripts/system-packages.sh``) and is started with ``executable_path``. Pages may only reach loopback: every
other request is answered by the test itself (``route_outside_loopback``) so a redirect to a customer's
app (``https://app.example.com/...``) lands on a stub page and nothing leaves the machine.
"""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

from playwright.sync_api import Browser, BrowserContext, Page, Playwright, Route

CHROMIUM = Path(os.environ.get("CDATA_E2E_CHROMIUM", "/usr/bin/chromium"))
MISSING_CHROMIUM = (
    f"Chromium is not installed at {CHROMIUM}. The end-to-end suite drives Debian's chromium package: "
    "`bash scripts/system-packages.sh` installs it (as root or with sudo; ./scripts/test.sh runs it before "
    "pytest), or set CDATA_E2E_CHROMIUM to a Chromium binary. Then run the tests again."
)
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",  # we run as root, where Chromium's sandbox cannot start
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-breakpad",
    "--disable-domain-reliability",
    "--no-pings",
    "--no-proxy-server",
    # No name resolves but loopback ones, so nothing else is reachable even if a route were missed.
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1, EXCLUDE [::1]",
]
LANDING_PAGE = "<!doctype html><title>Back in the app</title><h1>Back in the app</h1>"


def launch_chromium(playwright: Playwright) -> Browser:
    if not CHROMIUM.exists():
        raise FileNotFoundError(MISSING_CHROMIUM)
    return playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)


def is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def route_outside_loopback(context: BrowserContext) -> list[str]:
    """Let loopback requests through; answer every other one with a stub page. Returns the URLs stubbed."""
    stubbed: list[str] = []

    def handle(route: Route) -> None:
        url = route.request.url
        if is_loopback(url):
            route.continue_()
        else:
            stubbed.append(url)
            route.fulfill(status=200, content_type="text/html", body=LANDING_PAGE)

    context.route("**/*", handle)
    return stubbed


def fill_and_save(
    page: Page,
    *,
    name: str = "Acme Salesforce",
    user: str = "ann@acme.example",
    api_key: str = "k-123",
    screenshot: Path | None = None,
) -> dict[str, str]:
    """What the customer does on the open connect page: fill the form, click Save & Test, land on the
    redirect URL.

    Returns the query parameters of the page the browser lands on (the app's own and the appended
    ``cdata_connection_id``, ``cdata_connection_name``, ``cdata_connection_status``). ``screenshot``
    saves a PNG of the filled-in form.
    """
    page.get_by_label("Connection name").fill(name)
    page.get_by_label("User").fill(user)
    page.get_by_label("API key").fill(api_key)
    if screenshot is not None:
        page.screenshot(path=str(screenshot), full_page=True)
    page.get_by_role("button", name="Save & Test").click()
    page.wait_for_url(lambda url: "cdata_connection_status=" in url)
    return dict(parse_qsl(urlsplit(page.url).query))
