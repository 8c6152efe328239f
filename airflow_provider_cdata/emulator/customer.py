"""A customer without a browser: completes a connect flow with the same requests the page makes.

It loads the page the connect URL points at (first picking ``data_source`` on the picker page when
the link was made without one), reads the form (action and hidden fields) out of the HTML, posts it
the way "Save & Test" or "Return without saving" does, and returns the query parameters appended to
the caller's redirect URL.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from html.parser import HTMLParser
from urllib.parse import parse_qsl, urljoin, urlsplit

import requests


@dataclass
class _FormReader(HTMLParser):
    action: str = ""
    form_id: str = ""
    fields: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__init__()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.action = values.get("action", "")
            self.form_id = values.get("id", "")
        elif tag == "input" and "name" in values:
            self.fields[values["name"]] = values.get("value", "")


class ConnectFlowError(Exception):
    """The connect page refused the flow (expired or forged token, conflict): its status and text."""

    def __init__(self, status: int, page: str) -> None:
        super().__init__(f"connect page answered {status}")
        self.status = status
        self.page = page


def complete_flow(
    connect_url: str,
    *,
    save: bool = True,
    api_key: str = "demo-api-key",
    user: str = "customer",
    name: str | None = None,
    data_source: str = "Salesforce",
    timeout: float = 10.0,
) -> dict[str, str]:
    """Open ``connect_url``, submit the form, and return the parameters added to the redirect URL.

    ``data_source``: what the customer picks when the page is the picker (a link made without a data
    source); ignored otherwise."""
    with requests.Session() as session:
        page = session.get(connect_url, timeout=timeout)
        if page.status_code != 200:
            raise ConnectFlowError(page.status_code, page.text)
        form = _FormReader()
        form.feed(page.text)
        if form.form_id == "picker":
            params = {**form.fields, "driver": data_source}
            page = session.get(urljoin(connect_url, form.action), params=params, timeout=timeout)
            if page.status_code != 200:
                raise ConnectFlowError(page.status_code, page.text)
            form = _FormReader()
            form.feed(page.text)
        data = dict(form.fields)
        data.update({"user": user, "api_key": api_key, "action": "save" if save else "cancel"})
        if name is not None:
            data["name"] = name
        answer = session.post(
            urljoin(connect_url, form.action), data=data, allow_redirects=False, timeout=timeout
        )
    if answer.status_code != 303:
        raise ConnectFlowError(answer.status_code, answer.text)
    return dict(parse_qsl(urlsplit(answer.headers["location"]).query))
