"""The emulator's ``/_emulator`` admin routes: state, counters, the request log, faults, seeded connections.

For tests, demos and benchmarks that run the emulator in another process.
"""

from __future__ import annotations

import math
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute

from airflow_provider_cdata.emulator import payloads
from airflow_provider_cdata.emulator.context import EmulatorContext
from airflow_provider_cdata.emulator.errors import error_response
from airflow_provider_cdata.emulator.faults import FaultRule
from airflow_provider_cdata.emulator.routes import ADMIN_ROUTE
from airflow_provider_cdata.emulator.state import CONNECTION_STATUSES, ConflictError


# -- admin routes for tests, demos and benchmarks that run the emulator in another process -----------
def admin_router(ctx: EmulatorContext, route_class: type[APIRoute]) -> APIRouter:
    """Every route is named ``admin``; bad input answers 400 naming the field, and changes nothing."""
    router = APIRouter(prefix="/_emulator", route_class=route_class)

    @router.get("/health", name=ADMIN_ROUTE)
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @router.get("/state", name=ADMIN_ROUTE)
    async def state() -> dict[str, Any]:
        accounts = [dict(a) for a in ctx.store.accounts.values()]
        return {"accounts": accounts, "connections": ctx.store.list_connections()}

    @router.get("/counters", name=ADMIN_ROUTE)
    async def counters() -> dict[str, Any]:
        return ctx.counters.snapshot()

    @router.get("/log", name=ADMIN_ROUTE)
    async def log() -> list[dict[str, Any]]:
        return [r.as_dict() for r in ctx.counters.records()]

    @router.post("/reset", name=ADMIN_ROUTE)
    async def reset() -> dict[str, str]:
        ctx.counters.reset()
        return {"status": "ok"}

    @router.get("/faults", name=ADMIN_ROUTE)
    async def faults() -> list[dict[str, Any]]:
        return [r.as_dict() for r in ctx.faults.rules]

    @router.post("/faults", name=ADMIN_ROUTE)
    async def add_fault(request: Request) -> Response:
        try:
            rule = ctx.faults.add(FaultRule.from_dict(payloads.loads(await request.body())))
        except (TypeError, ValueError) as exc:
            return error_response(400, f"Bad fault rule: {exc}")
        return JSONResponse(rule.as_dict())

    @router.delete("/faults", name=ADMIN_ROUTE)
    async def clear_faults() -> dict[str, str]:
        ctx.faults.clear()
        return {"status": "ok"}

    @router.post("/connections", name=ADMIN_ROUTE)
    async def add_connection(request: Request) -> Response:
        try:
            spec = _seed_connection_spec(payloads.loads(await request.body()))
        except ValueError as exc:
            return error_response(400, f"Bad connection: {exc}")
        age_days = spec.pop("ageDays")  # seed stale connections for demos
        try:
            connection = ctx.store.add_connection(
                spec.pop("accountId"),
                spec.pop("dataSource"),
                last_modified=ctx.clock.now() - age_days * 86400,
                **spec,
            )
        except KeyError:
            return error_response(400, "Bad connection: accountId names no child account")
        except ConflictError as exc:
            return error_response(400, f"Bad connection: {exc}")
        return JSONResponse(connection)

    @router.post("/connections/{connection_id}/status", name=ADMIN_ROUTE)
    async def set_status(request: Request, connection_id: str) -> Response:
        """``{"status": "Conditional"}``: what CData reports after a test that was partly good."""
        body = payloads.loads(await request.body())
        try:
            status = checked_status(body.get("status") if isinstance(body, dict) else None)
        except ValueError as exc:
            return error_response(400, f"Bad status: {exc}")
        if ctx.store.get_connection(connection_id) is None:
            return error_response(404, f"Connection '{connection_id}' was not found")
        return JSONResponse(ctx.store.set_status(connection_id, status))

    return router


MAX_AGE_DAYS = 36_500
MAX_STATUS_LENGTH = 64


def checked_status(status: Any) -> str:
    """A connection status: CData's set is open (Authenticated, NotAuthenticated, Conditional, and
    possibly more), so any short name is taken, for tests of values the provider does not know; but
    never null or empty, which ConnectionListItem does not allow (``status`` is required)."""
    if not isinstance(status, str) or not status.strip() or len(status) > MAX_STATUS_LENGTH:
        known = ", ".join(CONNECTION_STATUSES)
        raise ValueError(f"status must be a non-empty name such as {known}, not {status!r}")
    return status


def _seed_connection_spec(spec: Any) -> dict[str, Any]:
    """The fields of ``POST /_emulator/connections``, checked, with their defaults."""
    if not isinstance(spec, dict):
        raise ValueError("the body must be a JSON object")
    known = ("accountId", "dataSource", "name", "externalId", "status", "ageDays")
    unknown = sorted(set(spec) - set(known))
    if unknown:
        raise ValueError(f"unknown field {unknown[0]!r}; choose from {', '.join(known)}")
    checked: dict[str, Any] = {}
    for key, required in (("accountId", True), ("dataSource", False), ("name", False), ("externalId", False)):
        value = spec.get(key)
        if value is None and not required:
            continue
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"{key} must be a non-empty string" + ("" if required else " (or null)"))
        checked[key] = value
    checked.setdefault("dataSource", "Salesforce")
    checked["external_id"] = checked.pop("externalId", None)
    checked["status"] = checked_status(spec.get("status", "Authenticated"))
    age = spec.get("ageDays", 0)
    if (
        not isinstance(age, int | float)
        or isinstance(age, bool)
        or not math.isfinite(age)
        or not 0 <= age <= MAX_AGE_DAYS
    ):
        raise ValueError(f"ageDays must be a number of days from 0 to {MAX_AGE_DAYS}, not {age!r}")
    checked["ageDays"] = float(age)
    return checked
