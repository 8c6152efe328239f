"""Which connections match: the one predicate behind ConnectionSensor (poke, reschedule, deferrable)
and the time filters of ListConnectionsOperator.

No Airflow import here: the trigger rebuilds :class:`ConnectionCriteria` from plain values in the
triggerer, and DAG files import it while they are parsed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, time, timezone
from typing import Any

from airflow_provider_cdata.validation import validate_optional_name

# CData writes 2024-08-02T21:30:55.154Z and 2023-10-11T20:43:33.28Z alike (fraction digits vary), and
# Python 3.10's fromisoformat knows neither the Z nor a fraction that is not 3 or 6 digits long.
_ISO_8601 = re.compile(
    r"^(?P<date>\d{4}-\d{2}-\d{2})[T ](?P<time>\d{2}:\d{2}(?::\d{2})?)"
    r"(?:\.(?P<fraction>\d+))?(?P<zone>Z|z|[+-]\d{2}:?\d{2})?$"
)
# A date alone, as Airflow's ``ds`` and ``macros.ds_add(ds, -90)`` render it: midnight UTC of that day.
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def parse_time(value: object, field: str) -> datetime:
    """A datetime, or an ISO 8601 string with any number of fraction digits; naive means UTC.

    A date alone (a ``date``, or ``"2026-09-02"`` as ``{{ ds }}`` renders) means midnight UTC of that day.
    """
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, date):
        moment = datetime.combine(value, time(0, 0), tzinfo=timezone.utc)
    elif isinstance(value, str):
        moment = _parse_iso(value.strip(), field)
    else:
        raise _time_error(
            field, f"must be a datetime, a date or an ISO 8601 string, not {type(value).__name__}"
        )
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def parse_optional_time(value: object, field: str) -> datetime | None:
    if value is None or value == "":
        return None
    return parse_time(value, field)


def _parse_iso(text: str, field: str) -> datetime:
    if _ISO_DATE.match(text):
        try:
            return datetime.fromisoformat(f"{text}T00:00:00+00:00")
        except ValueError as exc:
            raise _time_error(field, f"is not a valid date: {exc}") from None
    match = _ISO_8601.match(text)
    if not match:
        raise _time_error(field, f"is not an ISO 8601 time or date: {text[:40]!r}")
    fraction = (match["fraction"] or "0")[:6].ljust(6, "0")
    zone = match["zone"] or ""
    zone = "+00:00" if zone in ("Z", "z") else zone
    if zone and ":" not in zone:
        zone = f"{zone[:3]}:{zone[3:]}"
    clock = match["time"] if match["time"].count(":") == 2 else f"{match['time']}:00"
    try:
        return datetime.fromisoformat(f"{match['date']}T{clock}.{fraction}{zone}")
    except ValueError as exc:
        raise _time_error(field, f"is not a valid time: {exc}") from None


def _time_error(field: str, problem: str) -> Exception:
    from airflow_provider_cdata.exceptions import CDataValidationError

    return CDataValidationError(field, f"{field} {problem}")


def last_modified(connection: dict[str, Any]) -> datetime | None:
    """The connection's ``lastModified`` as an aware datetime, or None when absent or unreadable."""
    value = connection.get("lastModified")
    if not isinstance(value, str):
        return None
    try:
        return parse_time(value, "lastModified")
    except ValueError:
        return None


def modified_between(
    connections: Iterable[dict[str, Any]], after: datetime | None, before: datetime | None
) -> list[dict[str, Any]]:
    """Connections modified strictly after ``after`` and strictly before ``before`` (either optional).

    A connection whose ``lastModified`` cannot be read is kept only when no bound is given: a time
    filter must not guess.
    """
    if after is None and before is None:
        return list(connections)
    kept = []
    for connection in connections:
        moment = last_modified(connection)
        if moment is None:
            continue
        if (after is None or moment > after) and (before is None or moment < before):
            kept.append(connection)
    return kept


@dataclass(frozen=True)
class ConnectionCriteria:
    """What a waited-for connection looks like; every criterion given must hold."""

    external_id: str | None = None
    connection_name: str | None = None
    data_source: str | None = None
    modified_after: datetime | None = None
    statuses: tuple[str, ...] | None = ("Authenticated",)

    @classmethod
    def build(
        cls,
        external_id: object = None,
        connection_name: object = None,
        data_source: object = None,
        modified_after: object = None,
        statuses: object = ("Authenticated",),
    ) -> ConnectionCriteria:
        """Validate raw (rendered) arguments and build the criteria, naming the field that is wrong."""
        return cls(
            external_id=validate_optional_name(external_id, "external_id"),
            connection_name=validate_optional_name(connection_name, "connection_name"),
            data_source=validate_optional_name(data_source, "data_source"),
            modified_after=parse_optional_time(modified_after, "modified_after"),
            statuses=validate_statuses(statuses),
        )

    def matches(self, connection: dict[str, Any]) -> bool:
        if self.external_id is not None and connection.get("externalId") != self.external_id:
            return False
        if self.connection_name is not None and connection.get("name") != self.connection_name:
            return False
        source = connection.get("dataSource")
        if self.data_source is not None and (
            not isinstance(source, str) or source.lower() != self.data_source.lower()
        ):
            return False
        if self.modified_after is not None:
            moment = last_modified(connection)
            if moment is None or moment <= self.modified_after:
                return False
        # Older API versions send no status: such a connection passes the status check. The set is
        # open (Authenticated, NotAuthenticated, Conditional, ...): a status is accepted only if named.
        status = connection.get("status")
        return self.statuses is None or status is None or status in self.statuses

    def first_match(self, connections: Iterable[dict[str, Any]]) -> dict[str, Any] | None:
        return next((c for c in connections if self.matches(c)), None)

    def describe(self) -> str:
        parts = [
            f"{name}={value!r}"
            for name, value in (
                ("external_id", self.external_id),
                ("connection_name", self.connection_name),
                ("data_source", self.data_source),
                ("modified_after", self.modified_after.isoformat() if self.modified_after else None),
                ("statuses", list(self.statuses) if self.statuses else None),
            )
            if value is not None
        ]
        return ", ".join(parts) or "any connection"

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON values, for a trigger's serialize()."""
        return {
            "external_id": self.external_id,
            "connection_name": self.connection_name,
            "data_source": self.data_source,
            "modified_after": self.modified_after.isoformat() if self.modified_after else None,
            "statuses": list(self.statuses) if self.statuses is not None else None,
        }

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> ConnectionCriteria:
        return cls.build(**values)


def validate_statuses(value: object) -> tuple[str, ...] | None:
    """The accepted statuses: one name (a string is one status, never its letters), a list of names,
    or None for any status. An empty list is refused: it would silently mean "any" or "never"."""
    from airflow_provider_cdata.exceptions import CDataValidationError

    if value is None:
        return None
    if isinstance(value, str):
        value = (value,)
    if not isinstance(value, list | tuple | set | frozenset) or not all(
        isinstance(s, str) and s.strip() for s in value
    ):
        shown = repr(value) if len(repr(value)) <= 60 else f"{repr(value)[:57]}..."
        raise CDataValidationError(
            "statuses", f"statuses must be a status name or a list of them, or None for any, not {shown}"
        )
    if not value:
        raise CDataValidationError(
            "statuses", "statuses must name at least one status (None accepts any status), got an empty list"
        )
    return tuple(value)
