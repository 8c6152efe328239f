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
    # Relative to the API root; {connection_id} and {account_id} are filled in with a validated UUID,
    # {id_or_external_id} with a checked, percent-encoded path segment (payloads.account_ref).
    path: str
    # A 404 after an attempt that may have been carried out means the work is done (a delete whose
    # answer was lost: the retry finds nothing to delete). See answers.settle().
    gone_is_done: bool = False
    # Account calls act on the parent: their JWT has no sub, and they need no child account.
    parent_level: bool = False
    # False: never sent again once an attempt may have been carried out (CallState.maybe_done), as the
    # work would be done twice: Create Account without an external id (a second, unfindable account).
    repeatable: bool = True


# Every route the hook calls, in one place.
ROUTES: Final[Mapping[str, Route]] = MappingProxyType(
    {
        "create": Route("POST", "/poweredby/connection/create"),
        "edit": Route("POST", "/poweredby/connection/edit/{connection_id}"),
        "list": Route("GET", "/poweredby/connection/list"),
        "delete": Route("DELETE", "/poweredby/connection/delete/{connection_id}", gone_is_done=True),
        "clear_metadata": Route("DELETE", "/poweredby/connection/{connection_id}/metadata"),
        "account_create": Route("POST", "/poweredby/account/create", parent_level=True),
        "account_list": Route("GET", "/poweredby/account/list", parent_level=True),
        "account_get": Route("GET", "/poweredby/account/{id_or_external_id}", parent_level=True),
        "account_update": Route("PUT", "/poweredby/account/update/{account_id}", parent_level=True),
        "account_delete": Route(
            "DELETE", "/poweredby/account/delete/{account_id}", gone_is_done=True, parent_level=True
        ),
        "sources": Route("GET", "/poweredby/sources/list", parent_level=True),
    }
)


@dataclass(frozen=True)
class Call:
    """One API call, its arguments already validated."""

    route: Route
    path: str
    account_id: str | None  # the JWT's sub; None on a parent-level route (account calls)
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
