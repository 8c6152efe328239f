"""Counters and the request log that tests and benchmarks read.

The log keeps method, route, query, JSON body, status and the verified JWT claims of each API call;
never the bearer token itself.
"""

from __future__ import annotations

import threading
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

ANSWER_LIMIT = 4 * 1024 * 1024


@dataclass
class RequestRecord:
    method: str
    path: str
    route: str
    query: dict[str, str] = field(default_factory=dict)
    body: Any = None
    claims: dict[str, Any] | None = None
    status: int = 0
    fault: str | None = None
    user_agent: str = ""
    # The body of a successful API answer, for the OpenAPI parity check of the test suite (at most
    # ANSWER_LIMIT bytes; longer: None and answer_cut). In memory only: never in as_dict() or
    # /_emulator/log, since a Create/Edit answer holds a connect-URL token.
    answer: bytes | None = field(default=None, repr=False)
    answer_cut: bool = field(default=False, repr=False)
    # Whether the route counted this request in flight (a request no route matched never is), and
    # whether it is counted and logged already.
    in_flight: bool = field(default=False, repr=False, compare=False)
    logged: bool = field(default=False, repr=False, compare=False)

    def as_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "path": self.path,
            "route": self.route,
            "query": self.query,
            "body": self.body,
            "claims": self.claims,
            "status": self.status,
            "fault": self.fault,
            "user_agent": self.user_agent,
        }


class Counters:
    """Requests per (route, status), TCP connections accepted, faults fired and peak concurrency."""

    def __init__(self, log_limit: int | None = None) -> None:
        """``log_limit``: keep only the latest requests in the log (a long-running CLI emulator)."""
        self._lock = threading.Lock()
        self.requests: Counter[tuple[str, int]] = Counter()
        self.faults: Counter[str] = Counter()
        self.connections_accepted = 0
        self.open_connections = 0
        self.in_flight: Counter[str] = Counter()
        self.max_in_flight: Counter[str] = Counter()
        self.log: deque[RequestRecord] = deque(maxlen=log_limit)

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self.faults.clear()
            self.connections_accepted = 0
            self.in_flight.clear()
            self.max_in_flight.clear()
            self.log.clear()

    def connection_opened(self) -> None:
        with self._lock:
            self.connections_accepted += 1
            self.open_connections += 1

    def connection_closed(self) -> None:
        with self._lock:
            self.open_connections -= 1

    def started(self, record: RequestRecord) -> None:
        """The route named by ``record.route`` began to handle the request."""
        with self._lock:
            route = record.route
            record.in_flight = True
            self.in_flight[route] += 1
            self.max_in_flight[route] = max(self.max_in_flight[route], self.in_flight[route])

    def finished(self, record: RequestRecord) -> None:
        """The answer is complete (or the connection dropped): count it and log it, once."""
        with self._lock:
            if record.logged:
                return
            record.logged = True
            if record.in_flight:
                self.in_flight[record.route] -= 1
                record.in_flight = False
            self.requests[(record.route, record.status)] += 1
            if record.fault:
                self.faults[record.fault] += 1
            self.log.append(record)

    def count(self, route: str | None = None, status: int | None = None) -> int:
        """How many requests reached ``route`` (all routes if ``None``), optionally with ``status``."""
        with self._lock:
            return sum(
                n
                for (r, s), n in self.requests.items()
                if (route is None or r == route) and (status is None or s == status)
            )

    def records(self, route: str | None = None) -> list[RequestRecord]:
        with self._lock:
            return [r for r in self.log if route is None or r.route == route]

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "requests": [
                    {"route": r, "status": s, "count": n} for (r, s), n in sorted(self.requests.items())
                ],
                "faults": dict(self.faults),
                "connections_accepted": self.connections_accepted,
                "open_connections": self.open_connections,
                "max_in_flight": dict(self.max_in_flight),
            }
