"""The emulator's HTTP app: CData's API routes under ``/api``, the connect page, and ``/_emulator`` admin.

Errors are JSON, ``{"error": {"code": <status>, "message": "..."}}``. CData documents no error schema,
so the hook must also cope with HTML and empty bodies; the fault injector produces those.
"""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import urlencode, urlsplit

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute

from airflow_provider_cdata.emulator import payloads
from airflow_provider_cdata.emulator.admin import admin_router
from airflow_provider_cdata.emulator.connect_page import connect_page_router
from airflow_provider_cdata.emulator.context import EmulatorContext
from airflow_provider_cdata.emulator.errors import APIError, error_response
from airflow_provider_cdata.emulator.routes import API_PREFIX, API_ROUTES
from airflow_provider_cdata.emulator.routing import EmulatorMiddleware, emulated_route_class, record_of
from airflow_provider_cdata.emulator.state import DATA_SOURCES, ConflictError
from airflow_provider_cdata.emulator.tokens import AuthError, Caller, verify_api_token

__all__ = ["API_PREFIX", "API_ROUTES", "APIError", "create_app", "error_response"]


def create_app(ctx: EmulatorContext, public_url: str | None = None) -> FastAPI:
    """Build the app. ``public_url`` is the root the customer's browser uses (default: the request's)."""
    app = FastAPI(
        title="Powered by CData API emulator",
        docs_url="/_emulator/docs",
        redoc_url=None,
        openapi_url="/_emulator/openapi.json",
    )
    app.state.public_url = public_url

    @app.exception_handler(APIError)
    async def _api_error(_: Request, exc: APIError) -> Response:
        return error_response(exc.status, exc.message)

    @app.exception_handler(AuthError)
    async def _auth_error(_: Request, exc: AuthError) -> Response:
        return error_response(exc.status, exc.message)

    route_class = emulated_route_class(ctx)
    app.include_router(_api_router(ctx, route_class))
    app.include_router(connect_page_router(ctx, route_class))
    app.include_router(admin_router(ctx, route_class))
    app.add_middleware(EmulatorMiddleware, ctx=ctx)
    return app


# -- helpers shared by the API handlers -----------------------------------------------------------
def _authenticate(ctx: EmulatorContext, request: Request, need_account: bool = True) -> Caller:
    caller = verify_api_token(
        ctx.store, request.headers.get("authorization"), ctx.clock.now(), need_account=need_account
    )
    record_of(request).claims = caller.claims
    return caller


async def _json_body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    try:
        body = payloads.loads(raw) if raw else {}
    except ValueError as exc:
        raise APIError(400, f"Request body must be JSON: {exc}") from None
    if not isinstance(body, dict):
        raise APIError(400, "Request body must be a JSON object")
    record_of(request).body = body
    return body


def _string_field(body: dict[str, Any], key: str, required: bool) -> str | None:
    value = body.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip():
        raise APIError(400, f"{key} is required and must be a non-empty string")
    return value


def _redirect_url(body: dict[str, Any]) -> str:
    url = _string_field(body, "redirectURL", required=True)
    assert url is not None
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise APIError(400, "redirectURL must be an absolute http(s) URL")
    return url


def _connection_id(value: str) -> str:
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise APIError(400, f"'{value}' is not a valid connection id") from None


def _canonical_source(name: str) -> str:
    for source in DATA_SOURCES:
        if source.lower() == name.lower():
            return source
    raise APIError(400, f"Unknown data source '{name}'")


def _public_root(request: Request) -> str:
    configured: str | None = request.app.state.public_url
    return (configured or str(request.base_url)).rstrip("/")


def _listed(connection: dict[str, Any]) -> dict[str, Any]:
    """A connection as List Connections shows it (ConnectionListItem in CData's OpenAPI description):
    every field, ``externalId`` null when it has none, and no settings, account or counters."""
    return {
        "id": connection["id"],
        "name": connection["name"],
        "dataSource": connection["dataSource"],
        "lastModified": connection["lastModified"],
        "externalId": connection.get("externalId"),
        "mcpUrl": f"/mcp/connections/{connection['id']}",
        "status": connection["status"],
    }


def _editable_name(body: dict[str, Any]) -> bool:
    """``editableName``: a JSON boolean, default true (a string "false" is refused, not read as true)."""
    value = body.get("editableName", True)
    if value is None:
        return True
    if not isinstance(value, bool):
        raise APIError(400, "editableName must be a boolean")
    return value


# -- the API -----------------------------------------------------------------------------------------
def _api_router(ctx: EmulatorContext, route_class: type[APIRoute]) -> APIRouter:
    router = APIRouter(prefix=API_PREFIX, route_class=route_class)
    store = ctx.store

    def flow_url(request: Request, path: str, claims: dict[str, Any], params: dict[str, str]) -> str:
        token = ctx.flow_tokens.sign(claims, ctx.clock.now())
        query = urlencode({"token": token, **params})
        return f"{_public_root(request)}/oem/user/connections/{path}?{query}"

    @router.post("/connection/create", name="create")
    async def create_connection(request: Request) -> Response:
        caller = _authenticate(ctx, request)
        body = await _json_body(request)
        # No dataSource: the link opens the general page where the customer picks one (CData then
        # ignores name, so it is not carried into the flow).
        given_source = _string_field(body, "dataSource", required=False)
        data_source = _canonical_source(given_source) if given_source is not None else None
        redirect = _redirect_url(body)
        name = _string_field(body, "name", required=False) if data_source else None
        external_id = _string_field(body, "externalId", required=False)
        editable = _editable_name(body)
        account_id = str(caller.account_id)
        if external_id and store.external_id_taken(account_id, external_id):
            raise APIError(409, f"A connection with externalId '{external_id}' already exists")
        claims = {
            "sub": account_id,
            "accountId": account_id,
            "oemAdminAccountId": caller.parent_id,
            "flowType": "createConnection",
            "flowDatasource": data_source,
            "connectionName": name,
            "editableName": editable,
            "externalId": external_id,
            "redirectURL": redirect,
        }
        params = {"driver": data_source} if data_source else {}
        url = flow_url(request, "edit", claims, {**params, "redirectUrl": redirect})
        return JSONResponse({"redirectURL": url})

    @router.post("/connection/edit/{connection_id}", name="edit")
    async def edit_connection(request: Request, connection_id: str) -> Response:
        caller = _authenticate(ctx, request)
        body = await _json_body(request)
        redirect = _redirect_url(body)
        connection = store.connection_in_account(str(caller.account_id), _connection_id(connection_id))
        if connection is None:
            raise APIError(404, f"Connection '{connection_id}' was not found")
        claims = {
            "sub": caller.account_id,
            "accountId": caller.account_id,
            "oemAdminAccountId": caller.parent_id,
            "flowType": "updateConnection",
            "connectionId": connection["id"],
            "connectionName": _string_field(body, "name", required=False),
            "editableName": _editable_name(body),
            "redirectURL": redirect,
        }
        params = {"driver": connection["dataSource"], "redirectUrl": redirect}
        return JSONResponse({"redirectURL": flow_url(request, f"edit/{connection['id']}", claims, params)})

    @router.get("/connection/list", name="list")
    async def list_connections(request: Request) -> Response:
        caller = _authenticate(ctx, request)
        driver = request.query_params.get("driver")
        external_id = request.query_params.get("externalId")

        def matches(connection: dict[str, Any]) -> bool:
            if driver and connection["dataSource"].lower() != driver.lower():
                return False
            return not external_id or connection.get("externalId") == external_id

        found = store.list_connections(str(caller.account_id), matches)
        return JSONResponse({"connections": [_listed(c) for c in found]})

    @router.delete("/connection/delete/{connection_id}", name="delete")
    async def delete_connection(request: Request, connection_id: str) -> Response:
        caller = _authenticate(ctx, request)
        # CData documents 200 for an unknown id too: deleting is idempotent.
        store.delete_connection(str(caller.account_id), _connection_id(connection_id))
        return Response(status_code=200)

    async def clear_metadata(request: Request, connection_id: str) -> Response:
        caller = _authenticate(ctx, request)
        if not store.clear_metadata(str(caller.account_id), _connection_id(connection_id)):
            raise APIError(404, f"Connection '{connection_id}' was not found")
        return Response(status_code=200)

    router.add_api_route(
        "/connection/{connection_id}/metadata", clear_metadata, methods=["DELETE"], name="clear_metadata"
    )
    router.add_api_route(
        "/{connection_id}/metadata", clear_metadata, methods=["DELETE"], name="clear_metadata_openapi"
    )

    @router.get("/sources/list", name="sources")
    async def list_sources(request: Request) -> Response:
        _authenticate(ctx, request, need_account=False)
        return JSONResponse({"dataSources": [{"dataSource": s} for s in DATA_SOURCES]})

    @router.post("/account/create", name="account_create")
    async def create_account(request: Request) -> Response:
        caller = _authenticate(ctx, request, need_account=False)
        body = await _json_body(request)
        try:
            # Both fields are optional (CData accepts {}); an external id is unique per parent: 409.
            account = store.add_account(
                caller.parent_id,
                external_id=_string_field(body, "externalId", required=False),
                account_name=_string_field(body, "accountName", required=False),
                seeded=False,
            )
        except ConflictError as exc:
            raise APIError(409, str(exc)) from None
        return JSONResponse(
            {
                "accountId": account["id"],
                "externalId": account["externalId"],
                "createdTime": account["created"],
            }
        )

    @router.get("/account/list", name="account_list")
    async def list_accounts(request: Request) -> Response:
        caller = _authenticate(ctx, request, need_account=False)
        accounts = [_public_account(a) for a in store.list_accounts(caller.parent_id)]
        return JSONResponse({"accounts": accounts})

    @router.get("/account/{id_or_external_id}", name="account_get")
    async def get_account(request: Request, id_or_external_id: str) -> Response:
        caller = _authenticate(ctx, request, need_account=False)
        account = store.find_account(caller.parent_id, id_or_external_id)
        if account is None:
            raise APIError(404, f"Account '{id_or_external_id}' was not found")
        return JSONResponse(_public_account(account))

    @router.put("/account/update/{account_id}", name="account_update")
    async def update_account(request: Request, account_id: str) -> Response:
        caller = _authenticate(ctx, request, need_account=False)
        body = await _json_body(request)
        try:
            account = store.update_account(
                caller.parent_id,
                account_id,
                external_id=_string_field(body, "externalId", required=False),
                account_name=_string_field(body, "accountName", required=False),
            )
        except ConflictError as exc:
            raise APIError(409, str(exc)) from None
        if account is None:
            raise APIError(404, f"Account '{account_id}' was not found")
        return JSONResponse(_public_account(account))

    @router.delete("/account/delete/{account_id}", name="account_delete")
    async def delete_account(request: Request, account_id: str) -> Response:
        caller = _authenticate(ctx, request, need_account=False)
        if not store.delete_account(caller.parent_id, account_id):
            raise APIError(404, f"Account '{account_id}' was not found")
        return Response(status_code=200)

    return router


def _public_account(account: dict[str, Any]) -> dict[str, Any]:
    return {k: account[k] for k in ("id", "externalId", "accountName", "created")}
