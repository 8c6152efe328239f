"""The route table, one call on a route, what it has done so far, and what came back."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final, NamedTuple

from airflow_provider_cdata import __version__

USER_AGENT = f"airflow-provider-cdata/{__version__}"


class Route(NamedTuple):
    method: str
    path: str  # relative to the API root; {connection_id} is filled in with a validated UUID
    # A 404 after an attempt that may have been carried out means the work is done (a delete whose
    # answer was lost: the retry finds nothing to delete). See answers.settle().
    gone_is_done: bool = False


# Every route the hook calls, in one place.
ROUTES: Final[Mapping[str, Route]] = MappingProxyType(
    {
        "create": Route("POST", "/poweredby/connection/create"),
        "edit": Route("POST", "/poweredby/connection/edit/{connection_id}"),
        "list": Route("GET", "/poweredby/connection/list"),
        "delete": Route("DELETE", "/poweredby/connection/delete/{connection_id}", gone_is_done=True),
        "clear_metadata": Route("DELETE", "/poweredby/connection/{connection_id}/metadata"),
    }
)


@dataclass(frozen=True)
class Call:
    """One API call, its arguments already validated."""

    route: Route
    path: str
    account_id: str
    json: dict[str, Any] | None = None
    params: dict[str, str] | None = None

    @property
    def method(self) -> str:
        return self.route.method


@dataclass(frozen=True)
class Answer:
    status: int
    headers: Mapping[str, str]  # requests' and aiohttp's header maps are both case-insensitive
    content: bytes
    attempts: int
    # Every token the call sent, to scrub from any snippet of this answer (settle() fills it in).
    tokens: tuple[str, ...] = field(default=(), repr=False)


@dataclass
class CallState:
    """What one call has done so far, across retries."""

    requests: int = 0
    reminted: bool = False
    tokens: list[str] = field(default_factory=list)  # every token sent, scrubbed from error messages
    # An earlier attempt may have been carried out though no answer said so: it was sent and its answer
    # was lost (the connection dropped, a read timed out), or it answered 5xx (a gateway may have passed
    # it on). Not after a connect failure, a 429 or a 401: those were not carried out.
    maybe_done: bool = False

    def sending(self, token: str) -> float:
        """Count one more request, carrying ``token``; the time it starts (for :func:`log_request`)."""
        self.requests += 1
        self.tokens.append(token)
        return time.monotonic()


def log_request(
    logger: logging.Logger, call: Call, outcome: object, started: float, state: CallState
) -> None:
    # Method, route, outcome, time and attempt only: never headers, tokens or full URLs.
    logger.debug(
        "CData API %s %s -> %s in %.1f ms (attempt %d)",
        call.method,
        call.path,
        outcome,
        (time.monotonic() - started) * 1000,
        state.requests,
    )
