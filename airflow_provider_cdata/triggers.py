"""ConnectionTrigger: the deferrable ConnectionSensor's wait, run in the triggerer.

It polls List Connections through the event loop's shared poll of its (Airflow connection, child
account) (:mod:`airflow_provider_cdata.polling`: one call per interval for every trigger waiting on
that account, each applying its own criteria), sleeps ``poke_interval`` between polls, keeps going
through transient failures (429, 5xx, network) with backoff, and ends at the deadline, whatever a poll
is doing then: a poll still waiting for CData (its timeouts, its retries, a long ``Retry-After``) is
cancelled, and the trigger fires its timeout event on time.
Readiness is the criteria's (:class:`~airflow_provider_cdata.criteria.ConnectionCriteria`): with the
default ``statuses`` only an ``Authenticated`` connection fires the event; a ``Conditional`` one (a Save &
Test that passed only in part) is waited past, unless ``statuses`` names it.

It is rebuilt in another process from :meth:`serialize`, so its kwargs are plain values only, and it
imports the hook lazily (the triggerer imports this module by its classpath).
"""

from __future__ import annotations

import asyncio
import copy
import time
from collections.abc import AsyncIterator, Coroutine
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol, TypeVar

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_cdata import DEFAULT_CONN_ID
from airflow_provider_cdata.criteria import ConnectionCriteria
from airflow_provider_cdata.exceptions import CDataAPIError, CDataError

# The event's status names, read by ConnectionSensor.execute_complete too.
SUCCESS = "success"  # a matching connection was listed: it is the event's "connection"
TIMEOUT = "timeout"  # the deadline passed first (the sensor raises AirflowSensorTimeout)
ERROR = "error"  # a failure that waiting cannot fix (bad criteria, a 4xx, a bad certificate)

# Longest pause between polls while CData keeps failing (the hook has already retried each poll).
MAX_ERROR_BACKOFF_SECONDS = 300.0

T = TypeVar("T")


class ConnectionSource(Protocol):
    """Where a trigger's polls get the account's connections (the shared poll, see polling.py)."""

    async def connections(self, max_age: float) -> list[dict[str, Any]]: ...


class ConnectionTrigger(BaseTrigger):
    """Fire once a connection matching ``criteria`` is listed, or the deadline passes, or an error
    that waiting cannot fix occurs. It fires one event: ``{"status": SUCCESS | TIMEOUT | ERROR,
    "connection": dict | None, "message": str}`` (:func:`event_payload`)."""

    def __init__(
        self,
        criteria: dict[str, Any],
        poke_interval: float = 30.0,
        deadline: float | None = None,
        cdata_conn_id: str = DEFAULT_CONN_ID,
        account_id: str | None = None,
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]  # Airflow leaves it unannotated
        self.criteria = dict(criteria)
        self.poke_interval = float(poke_interval)
        self.deadline = deadline
        self.cdata_conn_id = cdata_conn_id
        self.account_id = account_id

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "criteria": self.criteria,
                "poke_interval": self.poke_interval,
                "deadline": self.deadline,
                "cdata_conn_id": self.cdata_conn_id,
                "account_id": self.account_id,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        yield await self.wait()

    async def wait(self) -> TriggerEvent:
        """Poll until a connection matches, the deadline passes, or waiting cannot help; the one event."""
        try:
            criteria = ConnectionCriteria.from_dict(self.criteria)
        except CDataError as exc:
            return _event(ERROR, f"Invalid criteria: {exc}")
        async with self._subscribe() as source:
            if self.deadline is None:
                return await self._poll(source, criteria)
            # The hook's timeouts and retries bound one poll, not the wait: the deadline does.
            event = await _before_deadline(self._poll(source, criteria), self.deadline)
            return event if event is not None else self._timed_out(criteria)

    def _subscribe(self) -> AbstractAsyncContextManager[ConnectionSource]:
        """The loop's shared poll of this trigger's (connection, account); left when the wait ends."""
        from airflow_provider_cdata.polling import subscribe

        return subscribe(self.cdata_conn_id, self.account_id)

    async def _poll(self, source: ConnectionSource, criteria: ConnectionCriteria) -> TriggerEvent:
        failures = 0
        self.log.info("Waiting for a connection matching %s", criteria.describe())
        while True:
            pause = self.poke_interval
            try:
                # An answer up to one interval old, shared with every trigger on this account.
                connections = await source.connections(max_age=self.poke_interval)
            except CDataAPIError as exc:
                # Worth waiting out: no answer (network, timeout), 429 or 5xx; not a 4xx or a bad certificate.
                if not exc.retryable:
                    return _event(ERROR, str(exc))
                failures += 1
                pause = min(
                    self.poke_interval * 2 ** (failures - 1),
                    max(self.poke_interval, MAX_ERROR_BACKOFF_SECONDS),
                )
                self.log.warning("Polling CData failed (%s); trying again in %.0f s", exc, pause)
            except CDataError as exc:
                return _event(ERROR, str(exc))
            else:
                failures = 0
                match = criteria.first_match(connections)
                if match is not None:
                    message = f"Connection {match.get('id')} matches {criteria.describe()}"
                    # A copy: the listing is shared, the event is this trigger's own.
                    return _event(SUCCESS, message, copy.deepcopy(match))
            remaining = None if self.deadline is None else self.deadline - time.time()
            if remaining is not None and remaining <= 0:
                return self._timed_out(criteria)
            await asyncio.sleep(pause if remaining is None else min(pause, remaining))

    def _timed_out(self, criteria: ConnectionCriteria) -> TriggerEvent:
        message = f"No connection matching {criteria.describe()} appeared before the timeout"
        return _event(TIMEOUT, message)


async def _before_deadline(work: Coroutine[Any, Any, T], deadline: float) -> T | None:
    """``work``'s result, or None once the wall-clock ``deadline`` (epoch seconds) has passed.

    At the deadline ``work`` is cancelled and awaited until it has unwound (its request closed, its
    request slot given back, its retry sleep ended), so nothing is left pending on the loop. A trigger
    cancelled from outside (task cleared, triggerer stopping) unwinds ``work`` the same way.
    """
    task = asyncio.ensure_future(work)
    try:
        await asyncio.wait({task}, timeout=max(0.0, deadline - time.time()))
    finally:
        if not task.done():
            task.cancel()
            # Not asyncio.wait_for / shield: wait() never raises the task's own CancelledError here,
            # and a second cancellation of this coroutine still propagates.
            await asyncio.wait({task})
    if task.cancelled():
        return None
    return task.result()  # done on its own, also at the very deadline: its event, or its exception


def event_payload(status: str, message: str, connection: dict[str, Any] | None = None) -> dict[str, Any]:
    """The payload of the trigger's one event."""
    return {"status": status, "connection": connection, "message": message}


def _event(status: str, message: str, connection: dict[str, Any] | None = None) -> TriggerEvent:
    return TriggerEvent(event_payload(status, message, connection))  # type: ignore[no-untyped-call]


# The asset watcher's trigger, defined in its own module (its serialize() names this classpath).
from airflow_provider_cdata.event_triggers import ConnectionEventTrigger  # noqa: E402

__all__ = ["ConnectionEventTrigger", "ConnectionTrigger", "event_payload"]
