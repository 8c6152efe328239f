"""The customer's side in a real browser: the emulator's connect page, filled in and saved in Chromium."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import requests
from playwright.sync_api import Page

from tests.conftest import CData
from tests.e2e.browser import save_connect_page

pytestmark = pytest.mark.e2e

REDIRECT = "https://app.example.com/onboarded?customer=42"


def connect_url(cdata: CData, **body: Any) -> str:
    answer = requests.post(
        f"{cdata.base_url}/poweredby/connection/create",
        json={"dataSource": "Salesforce", "redirectURL": REDIRECT, **body},
        headers=cdata.headers(),
        timeout=10,
    )
    answer.raise_for_status()
    url: str = answer.json()["redirectURL"]
    return url


def test_customer_saves_the_connect_page_in_chromium_and_lands_on_the_redirect_url(
    e2e_cdata: CData, page: Page, artifacts_dir: Path
) -> None:
    screenshot = artifacts_dir / "connect-page.png"

    params = save_connect_page(page, connect_url(e2e_cdata, externalId="browser-1"), screenshot=screenshot)

    assert page.url.startswith("https://app.example.com/onboarded?customer=42&")
    assert params["cdata_connection_status"] == "success"
    (connection,) = e2e_cdata.emulator.connections(e2e_cdata.account_id)
    assert params["cdata_connection_id"] == connection["id"]
    assert connection["name"] == "Acme Salesforce"
    assert connection["externalId"] == "browser-1"
    assert page.locator("h1").inner_text() == "Back in the app", "the stub, not the internet, answered"
    assert screenshot.read_bytes().startswith(b"\x89PNG"), "a screenshot of the filled-in page, kept for CI"
