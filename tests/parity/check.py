"""The parity check: every request the hook sent, and every answer the emulator gave, against the models.

A request counts as the hook's when its User-Agent is the provider's (tests that send hand-made bodies
with ``requests`` are testing the emulator's refusals, not the provider). Every successful API answer
counts, whoever asked: the emulator must never answer a shape CData does not describe.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from pydantic import ValidationError

from airflow_provider_cdata.emulator.metrics import RequestRecord
from airflow_provider_cdata.transport.routes import USER_AGENT
from tests.parity.models import ROUTE_SCHEMAS, Schema


def sent_by_hook(record: RequestRecord) -> bool:
    return record.user_agent.startswith(f"{USER_AGENT} ")


def problems(records: Iterable[RequestRecord]) -> list[str]:
    """What in ``records`` does not match the description: one line per request or answer."""
    found: list[str] = []
    for record in records:
        schemas = ROUTE_SCHEMAS.get(record.route)
        if schemas is None:
            continue  # the connect page, /_emulator admin, or a path no route matched
        request_schema, query_schema, answer_schema = schemas
        where = f"{record.method} {record.path} ({record.route}, {record.status})"
        if sent_by_hook(record):
            found += _request_problems(record, where, request_schema, query_schema)
        if record.answer is not None:
            found += _answer_problems(record.answer, where, answer_schema)
    return found


def _request_problems(
    record: RequestRecord, where: str, body_schema: type[Schema] | None, query_schema: type[Schema] | None
) -> list[str]:
    found: list[str] = []
    if record.body is not None:  # recorded once the emulator read it (not when auth or a fault came first)
        if body_schema is None:
            found.append(f"{where}: the hook sent a body the description does not give this call")
        else:
            found += _invalid(body_schema, json.dumps(record.body), f"{where} request body")
    if record.query:
        if query_schema is None:
            found.append(f"{where}: the hook sent query parameters {sorted(record.query)}")
        else:
            found += _invalid(query_schema, json.dumps(record.query), f"{where} query")
    return found


def _answer_problems(answer: bytes, where: str, schema: type[Schema] | None) -> list[str]:
    if schema is None:
        return [] if not answer.strip() else [f"{where}: answered a body where the description has none"]
    return _invalid(schema, answer, f"{where} answer")


def _invalid(schema: type[Schema], text: str | bytes, what: str) -> list[str]:
    try:
        schema.model_validate_json(text)
    except ValidationError as exc:
        errors = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or '(body)'}: {e['msg']}" for e in exc.errors()[:5]
        )
        return [f"{what} is not {schema.__name__}: {errors}"]
    return []
