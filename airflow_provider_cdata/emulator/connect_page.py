"""The customer's side of Create and Edit: the hosted page a connect URL opens.

``GET /oem/user/connections/edit?token=...`` (create) or ``/edit/{id}?token=...`` (edit) shows a form;
posting it with ``action=save`` creates or updates the connection, then redirects (303) to the caller's
redirect URL with ``cdata_connection_id``, ``cdata_connection_name`` and ``cdata_connection_status``
appended; ``action=cancel`` appends only ``cdata_connection_status=none``. An expired or forged token
shows an error page and changes nothing.

Without a data source (Create Connection sent no ``dataSource``), the page is first the picker, as
CData's general "Add Connection" page: the customer picks one of List Data Sources' names, which reloads
the page with ``driver=<name>``, and the form that follows carries it. With ``editableName=false`` and
a ``name``, the name field is read-only and the save keeps the name the API was given, whatever is
posted.

Settings: an empty API key saves the connection as ``NotAuthenticated`` and reports ``error``, the
way a failed "Save & Test" does.
"""

from __future__ import annotations

from html import escape
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.routing import APIRoute

from airflow_provider_cdata.emulator.context import EmulatorContext
from airflow_provider_cdata.emulator.state import DATA_SOURCES, ConflictError

PAGE_HEADERS = {
    "Cache-Control": "no-store",
    # The URL carries a bearer token: never send it on as a Referer to the redirect target.
    "Referrer-Policy": "no-referrer",
    # No form-action: browsers apply it to the 303 that follows the post, which goes to the caller's site.
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'",
}

STYLE = (
    "body{font-family:sans-serif;max-width:28rem;margin:3rem auto}label{display:block;margin-top:1rem}"
    "input{width:100%;padding:.4rem}button{margin-top:1.5rem;margin-right:.5rem;padding:.5rem 1rem}"
)


def with_params(url: str, params: dict[str, str]) -> str:
    """Append query parameters to ``url``, keeping the ones it already has."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True) + list(params.items())
    return urlunsplit(parts._replace(query=urlencode(query)))


def connect_page_router(ctx: EmulatorContext, route_class: type[APIRoute] = APIRoute) -> APIRouter:
    router = APIRouter(prefix="/oem/user/connections", route_class=route_class)

    def flow(token: str | None, connection_id: str | None) -> dict[str, Any]:
        claims = ctx.flow_tokens.verify(token or "", ctx.clock.now())
        expected = "updateConnection" if connection_id else "createConnection"
        if claims.get("flowType") != expected or claims.get("connectionId") != connection_id:
            raise ValueError("This link is not valid. Ask for a new connection link.")
        return claims

    def show(request: Request, connection_id: str | None) -> Response:
        token = request.query_params.get("token")
        try:
            claims = flow(token, connection_id)
        except ValueError as exc:
            return _error_page(str(exc), 401)
        picked: str | None = None
        if claims["flowType"] == "createConnection" and claims.get("flowDatasource") is None:
            driver = request.query_params.get("driver")
            if driver is None:
                return HTMLResponse(_picker_page(request.url.path, token or ""), headers=PAGE_HEADERS)
            picked = _known_source(driver)
            if picked is None:
                return _error_page(f"Unknown data source {driver!r}.", 400)
        name, source = _initial_name(ctx, claims, picked)
        if name is None:
            return _error_page("This connection no longer exists.", 404)
        locked = _name_locked(claims)
        page = _form_page(request.url.path, token or "", name, source, picked, locked)
        return HTMLResponse(page, headers=PAGE_HEADERS)

    async def submit(request: Request, connection_id: str | None) -> Response:
        form = await request.form()
        token = str(form.get("token", ""))
        try:
            claims = flow(token, connection_id)
        except ValueError as exc:
            return _error_page(str(exc), 401)
        redirect = str(claims["redirectURL"])
        if form.get("action") != "save":
            return _redirect(with_params(redirect, {"cdata_connection_status": "none"}))
        api_key = str(form.get("api_key", "")).strip()
        settings = {"user": str(form.get("user", "")), "api_key_set": str(bool(api_key))}
        status = "Authenticated" if api_key else "NotAuthenticated"
        name = str(form.get("name", "")).strip() or None
        if _name_locked(claims):
            name = claims["connectionName"]  # editableName=false: the server enforces the API's name
        if claims["flowType"] == "createConnection" and claims.get("flowDatasource") is None:
            picked = _known_source(str(form.get("dataSource", "")))
            if picked is None:
                return _error_page("Pick a data source first.", 400)
            claims = {**claims, "flowDatasource": picked}
        try:
            connection = _save(ctx, claims, name, status, settings)
        except (ConflictError, KeyError) as exc:
            return _error_page(f"The connection could not be saved: {exc}", 409)
        params = {
            "cdata_connection_id": connection["id"],
            "cdata_connection_name": connection["name"],
            "cdata_connection_status": "success" if status == "Authenticated" else "error",
        }
        return _redirect(with_params(redirect, params))

    @router.get("/edit", name="connect_page")
    async def create_page(request: Request) -> Response:
        return show(request, None)

    @router.get("/edit/{connection_id}", name="connect_page")
    async def edit_page(request: Request, connection_id: str) -> Response:
        return show(request, connection_id)

    @router.post("/edit", name="connect_submit")
    async def create_submit(request: Request) -> Response:
        return await submit(request, None)

    @router.post("/edit/{connection_id}", name="connect_submit")
    async def edit_submit(request: Request, connection_id: str) -> Response:
        return await submit(request, connection_id)

    return router


def _known_source(name: str) -> str | None:
    """A name from List Data Sources (any case), as the API spells it; or None."""
    return next((source for source in DATA_SOURCES if source.lower() == name.strip().lower()), None)


def _name_locked(claims: dict[str, Any]) -> bool:
    """editableName=false locks the field, and only when a name was given (CData: "no effect when
    name is omitted")."""
    return claims.get("editableName") is False and bool(claims.get("connectionName"))


def _initial_name(
    ctx: EmulatorContext, claims: dict[str, Any], picked: str | None = None
) -> tuple[str | None, str]:
    if claims["flowType"] == "updateConnection":
        connection = ctx.store.get_connection(claims["connectionId"])
        if connection is None:
            return None, ""
        return claims.get("connectionName") or connection["name"], connection["dataSource"]
    source = picked or claims["flowDatasource"]
    return claims.get("connectionName") or ctx.store.default_name(claims["accountId"], source), source


def _save(
    ctx: EmulatorContext, claims: dict[str, Any], name: str | None, status: str, settings: dict[str, str]
) -> dict[str, Any]:
    if claims["flowType"] == "updateConnection":
        if ctx.store.get_connection(claims["connectionId"]) is None:
            raise KeyError("the connection no longer exists")
        return ctx.store.update_connection(
            claims["connectionId"], name=name, status=status, settings=settings
        )
    return ctx.store.add_connection(
        claims["accountId"],
        claims["flowDatasource"],
        name=name or claims.get("connectionName"),
        external_id=claims.get("externalId"),
        status=status,
        settings=settings,
    )


def _redirect(url: str) -> Response:
    return RedirectResponse(url, status_code=303, headers={"Referrer-Policy": "no-referrer"})


def _picker_page(action: str, token: str) -> str:
    """CData's general "Add Connection" page: pick a data source, then the usual form."""
    options = "".join(f'<option value="{escape(s)}">{escape(s)}</option>' for s in DATA_SOURCES)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Add Connection</title>
<style>{STYLE}</style></head>
<body>
<h1>Add Connection</h1>
<form id="picker" method="get" action="{escape(action)}">
  <input type="hidden" name="token" value="{escape(token)}">
  <label for="driver">Data source</label>
  <select id="driver" name="driver">{options}</select>
  <button type="submit">Continue</button>
</form>
</body></html>
"""


def _form_page(
    action: str, token: str, name: str, source: str, picked: str | None = None, locked: bool = False
) -> str:
    carried = f'\n  <input type="hidden" name="dataSource" value="{escape(picked)}">' if picked else ""
    readonly = " readonly" if locked else ""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Connect {escape(source)}</title>
<style>{STYLE}</style></head>
<body>
<h1>Connect {escape(source)}</h1>
<form method="post" action="{escape(action)}">
  <input type="hidden" name="token" value="{escape(token)}">{carried}
  <label for="name">Connection name</label>
  <input id="name" name="name" value="{escape(name)}" maxlength="100"{readonly}>
  <label for="user">User</label>
  <input id="user" name="user" autocomplete="username">
  <label for="api_key">API key</label>
  <input id="api_key" name="api_key" type="password" autocomplete="off">
  <button type="submit" name="action" value="save">Save &amp; Test</button>
  <button type="submit" name="action" value="cancel" formnovalidate>Return without saving</button>
</form>
</body></html>
"""


def _error_page(message: str, status: int) -> Response:
    page = (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Connection link error</title>'
        f"<style>{STYLE}</style></head><body><h1>Something went wrong</h1>"
        f'<p id="error">{escape(message)}</p></body></html>'
    )
    return HTMLResponse(page, status_code=status, headers=PAGE_HEADERS)
