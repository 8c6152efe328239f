"""Per request: the route's name, the faults of API routes, the counters and the request log.

``EmulatorMiddleware`` (outermost) makes the request's :class:`RequestRecord`, notes the status and logs
the request once the answer is complete. The routers' route class, from :func:`emulated_route_class`,
names the record after the route FastAPI matched and injects that route's faults.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from email.utils import formatdate
from typing import Any
from urllib.parse import parse_qsl

from fastapi import Request
from fastapi.responses import HTMLResponse, Response
from fastapi.routing import APIRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from airflow_provider_cdata.emulator.context import EmulatorContext
from airflow_provider_cdata.emulator.errors import APIError, error_response
from airflow_provider_cdata.emulator.faults import FaultRule
from airflow_provider_cdata.emulator.metrics import ANSWER_LIMIT, RequestRecord
from airflow_provider_cdata.emulator.routes import API_ROUTES, UNKNOWN_ROUTE
from airflow_provider_cdata.emulator.tokens import AuthError


def record_of(request: Request) -> RequestRecord:
    """The request's entry in the log, made by EmulatorMiddleware."""
    record: RequestRecord = request.scope["cdata.record"]
    return record


# -- route names and faults: on the route FastAPI matched ----------------------------------------------
def emulated_route_class(ctx: EmulatorContext) -> type[APIRoute]:
    """A route class that names the request in the log and, on the API's routes, injects the faults.

    The name is the matched route's own ``name=``, set by FastAPI's documented hook for custom route
    classes (``get_route_handler``), so it holds whatever FastAPI does with included routers (0.137+
    keeps them, not their routes, in ``app.router.routes``).
    """

    class EmulatedRoute(APIRoute):
        def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
            handler = super().get_route_handler()
            name = self.name
            faulted = name in API_ROUTES

            async def named(request: Request) -> Response:
                record = record_of(request)
                record.route = name
                ctx.counters.started(record)
                if not faulted:
                    return await handler(request)
                latency, failure = ctx.faults.draw(name)
                if latency:
                    await asyncio.sleep(latency)
                if failure is None:
                    return await handler(request)
                record.fault = failure.kind
                if failure.kind == "drop":
                    return _Dropped(ctx)
                if failure.kind == "truncated":
                    return _Truncated(await _answer(handler, request), ctx)
                return _fault_response(failure)

            return named

    return EmulatedRoute


async def _answer(handler: Callable[[Request], Coroutine[Any, Any, Response]], request: Request) -> Response:
    """The handler's response, its API errors included (they are cut by ``truncated`` too)."""
    try:
        return await handler(request)
    except (APIError, AuthError) as exc:
        return error_response(exc.status, exc.message)


def _abort(ctx: EmulatorContext, scope: Scope) -> None:
    transport = ctx.transports.get(tuple(scope["client"]))
    if transport is not None:
        transport.abort()


class _Dropped(Response):
    """Close the TCP connection without an answer."""

    def __init__(self, ctx: EmulatorContext) -> None:
        super().__init__()
        self._ctx = ctx

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        _abort(self._ctx, scope)
        # Let the server see the connection lost before this returns, so it sends nothing.
        await asyncio.sleep(0)


class _Truncated(Response):
    """The real status and headers, then half the body, then close: a cut transfer."""

    def __init__(self, answer: Response, ctx: EmulatorContext) -> None:
        super().__init__()
        self._answer = answer
        self._ctx = ctx

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        messages: list[Message] = []

        async def capture(message: Message) -> None:
            messages.append(message)

        await self._answer(scope, receive, capture)
        body = b"".join(m.get("body", b"") for m in messages if m["type"] == "http.response.body")
        start = next(m for m in messages if m["type"] == "http.response.start")
        # Promise more bytes than are sent (at least 2, so an empty body is cut too).
        headers = [(k, v) for k, v in start["headers"] if k.lower() != b"content-length"]
        headers.append((b"content-length", str(max(len(body), 2)).encode()))
        await send({**start, "headers": headers})
        await send({"type": "http.response.body", "body": body[: len(body) // 2], "more_body": True})
        _abort(self._ctx, scope)
        await asyncio.sleep(0)


# -- middleware: counters and the request log ------------------------------------------------------------
class EmulatorMiddleware:
    def __init__(self, app: ASGIApp, ctx: EmulatorContext) -> None:
        self.app = app
        self.ctx = ctx

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
        user_agent = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"user-agent"), "")
        # The route names itself once FastAPI has matched it (EmulatedRoute); none matched: unknown.
        record = RequestRecord(
            method=scope["method"],
            path=scope["path"],
            route=UNKNOWN_ROUTE,
            query=query,
            user_agent=user_agent,
        )
        scope["cdata.record"] = record
        try:
            await self.app(scope, receive, self._recording(send, record))
        finally:
            self.ctx.counters.finished(record)  # no answer, or a cut one: log it now

    def _recording(self, send: Send, record: RequestRecord) -> Send:
        """``send`` that notes the status, and logs the request before the answer's last byte goes out:
        a client that has its answer finds the request in ``emu.requests()`` and the counters."""

        chunks: list[bytes] = []

        async def wrapped(message: Message) -> None:
            if message["type"] == "http.response.start":
                record.status = message["status"]
                if _empty_body(message):
                    # Delete and Clear Metadata answer no body: the client has the whole answer with
                    # the headers, before the (empty) body message below is even sent.
                    _keep_answer(record, [b""])
                    self.ctx.counters.finished(record)
            elif message["type"] == "http.response.body":
                if record.route in API_ROUTES and 200 <= record.status < 300 and not record.fault:
                    chunks.append(message.get("body", b""))
                if not message.get("more_body", False):
                    _keep_answer(record, chunks)
                    self.ctx.counters.finished(record)
            await send(message)

        return wrapped


def _keep_answer(record: RequestRecord, chunks: list[bytes]) -> None:
    if not chunks or not (record.route in API_ROUTES and 200 <= record.status < 300 and not record.fault):
        return
    if sum(map(len, chunks)) > ANSWER_LIMIT:
        record.answer_cut = True
    else:
        record.answer = b"".join(chunks)


def _empty_body(start: Message) -> bool:
    return any(k.lower() == b"content-length" and v.strip() == b"0" for k, v in start.get("headers", []))


def _fault_response(rule: FaultRule) -> Response:
    headers: dict[str, str] = {}
    if rule.retry_after is not None:
        headers["Retry-After"] = (
            formatdate(time.time() + rule.retry_after, usegmt=True)
            if rule.retry_after_date
            else str(int(rule.retry_after) if rule.retry_after == int(rule.retry_after) else rule.retry_after)
        )
    if rule.kind == "html":
        page = (
            f"<html><head><title>{rule.status} Bad Gateway</title></head>"
            f"<body><center><h1>{rule.status} Bad Gateway</h1></center><hr>"
            "<center>nginx</center></body></html>"
        )
        return HTMLResponse(page, status_code=rule.status, headers=headers)
    return error_response(rule.status, f"Injected fault: HTTP {rule.status}", headers=headers)
