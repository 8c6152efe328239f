"""Faults on demand: the bad days of a real API, injected per route or for all, reproducible with a seed.

A rule names a kind, the route it applies to (``None``: every API route), how often it fires
(``rate``, drawn from one seeded ``random.Random``) and at most how many ``times``. Kinds:

``latency``    wait ``seconds`` before answering (combines with any other kind)
``status``     answer ``status`` (429, 500, 502, 503, 504, ...) with a JSON error, and ``Retry-After``
               when ``retry_after`` is set (seconds, or an HTTP date when ``retry_after_date``)
``html``       answer ``status`` (default 502) with an HTML error page, as a proxy in front would
``drop``       close the TCP connection without answering
``truncated``  run the call, then send half of the body and close the connection

Every field is checked when a rule is made (in Python, over ``/_emulator/faults`` or with ``--fault``):
a bad rule is refused with a ``ValueError`` naming the field, never stored to break every later call.
"""

from __future__ import annotations

import math
import random
import threading
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from airflow_provider_cdata.emulator.routes import API_ROUTES

KINDS = ("latency", "status", "html", "drop", "truncated")
STATUS_SHORTHANDS = {"429": 429, "500": 500, "502": 502, "503": 503, "504": 504}
# Bounds that keep every rule answerable: an HTTP error status, a sleep asyncio can schedule, a
# Retry-After that formats as a date.
MAX_SECONDS = 86_400.0
MAX_RETRY_AFTER = 366 * 86_400.0


@dataclass
class FaultRule:
    kind: str
    route: str | None = None
    rate: float = 1.0
    times: int | None = None
    status: int = 503
    seconds: float = 0.0
    retry_after: float | None = None
    retry_after_date: bool = False
    fired: int = field(default=0, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.kind, str) or self.kind not in KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; choose from {', '.join(KINDS)}")
        if self.route is not None and (not isinstance(self.route, str) or self.route not in API_ROUTES):
            routes = ", ".join(API_ROUTES)
            raise ValueError(f"fault route must be one of {routes} (or null), not {self.route!r}")
        _number("rate", self.rate, 0.0, 1.0)
        if self.times is not None and (not _is_int(self.times) or self.times < 0):
            raise ValueError(f"fault times must be a whole number >= 0 (or null), not {self.times!r}")
        if not _is_int(self.status) or not 400 <= self.status <= 599:
            raise ValueError(f"fault status must be an HTTP error status, 400 to 599, not {self.status!r}")
        _number("seconds", self.seconds, 0.0, MAX_SECONDS)
        if self.retry_after is not None:
            _number("retry_after", self.retry_after, 0.0, MAX_RETRY_AFTER)
        if not isinstance(self.retry_after_date, bool):
            raise ValueError(f"fault retry_after_date must be true or false, not {self.retry_after_date!r}")
        if not _is_int(self.fired) or self.fired < 0:
            raise ValueError(f"fault fired must be a whole number >= 0, not {self.fired!r}")
        if self.kind == "html" and self.status == 503:
            self.status = 502

    @classmethod
    def from_dict(cls, spec: Any) -> FaultRule:
        """A rule from JSON (``POST /_emulator/faults``): an object of the fields above, ``kind`` required."""
        if not isinstance(spec, dict):
            raise ValueError("a fault rule must be a JSON object")
        settable = [f.name for f in fields(cls) if f.name != "fired"]
        unknown = sorted(set(spec) - set(settable))
        if unknown:
            raise ValueError(f"unknown fault field {unknown[0]!r}; choose from {', '.join(settable)}")
        if "kind" not in spec:
            raise ValueError(f"fault kind is required; choose from {', '.join(KINDS)}")
        return cls(**spec)

    @property
    def exhausted(self) -> bool:
        return self.times is not None and self.fired >= self.times

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _number(name: str, value: Any, low: float, high: float) -> None:
    if (
        not isinstance(value, int | float)
        or isinstance(value, bool)
        or not math.isfinite(value)
        or not low <= value <= high
    ):
        raise ValueError(f"fault {name} must be a number from {low:g} to {high:g}, not {value!r}")


def parse_fault_spec(spec: str) -> FaultRule:
    """Parse a CLI fault, ``KIND[:key=value,...]``: ``503:rate=0.3``, ``429:retry_after=1``,
    ``latency:seconds=0.02``, ``drop:route=list,times=2``. A bare status code means kind ``status``."""
    kind, _, options = spec.partition(":")
    values: dict[str, Any] = {}
    if kind in STATUS_SHORTHANDS:
        values["status"] = STATUS_SHORTHANDS[kind]
        kind = "status"
    for option in filter(None, options.split(",")):
        key, sep, raw = option.partition("=")
        if not sep:
            raise ValueError(f"fault option {option!r} must be key=value")
        values[key.strip()] = _option_value(key.strip(), raw.strip())
    return FaultRule(kind=kind, **values)


def _option_value(key: str, raw: str) -> Any:
    if key in ("rate", "seconds", "retry_after"):
        return float(raw)
    if key in ("times", "status"):
        return int(raw)
    if key == "retry_after_date":
        return raw.lower() in ("1", "true", "yes")
    if key == "route":
        return raw or None
    raise ValueError(f"unknown fault option {key!r}")


class FaultInjector:
    """Holds the rules and decides, per request, which of them fire."""

    def __init__(self, seed: int | None = 0) -> None:
        self._lock = threading.Lock()
        self._random = random.Random(seed)
        self.rules: list[FaultRule] = []

    def add(self, rule: FaultRule) -> FaultRule:
        with self._lock:
            self.rules.append(rule)
        return rule

    def clear(self) -> None:
        with self._lock:
            self.rules.clear()

    def reseed(self, seed: int | None) -> None:
        with self._lock:
            self._random.seed(seed)

    def draw(self, route: str) -> tuple[float, FaultRule | None]:
        """Return the latency to add and at most one failing rule for this request."""
        latency = 0.0
        failure: FaultRule | None = None
        with self._lock:
            for rule in self.rules:
                if rule.exhausted or rule.route not in (None, route):
                    continue
                if rule.kind != "latency" and failure is not None:
                    continue
                if rule.rate < 1.0 and self._random.random() >= rule.rate:
                    continue
                rule.fired += 1
                if rule.kind == "latency":
                    latency += rule.seconds
                else:
                    failure = rule
        return latency, failure
