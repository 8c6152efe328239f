"""One List Connections per child account per interval, however many triggers wait on it.

Every trigger of this provider that waits on the same (Airflow connection id, child account) in one
event loop (one triggerer) subscribes to one :class:`SharedPoll`. A trigger asks it for the account's
connections no older than its own ``poke_interval``: an answer that young is handed back as it is, a
request already in flight is joined, and only otherwise is List Connections called, once, for every
trigger asking. Each trigger then applies its own criteria to that answer, so the call lists the whole
account (no ``driver`` / ``externalId`` filter: the criteria check both, the same way CData does).

What stays each trigger's own: its interval, deadline, timeout event, error handling and backoff. A
failed call is an answer too (kept for one interval like any other): every trigger asking gets the
same error its own call would have raised, and each decides for itself (retry later, or its error
event); none is cancelled by another's failure or end.

Triggers with different intervals on one account: each gets an answer no older than its own interval,
so the account is polled at most once per the shortest interval any of its waiting triggers asks for.

The poll lives per event loop (a triggerer runs all its triggers in one) and only while a trigger is
subscribed: the last one leaving (done, timed out, cancelled) cancels a request still in flight,
awaits it and closes the poll's hook, so nothing is left on the loop. :func:`listings` offers the same
poll as an async iterator, which an event trigger (or an Airflow 3.3 shared stream's
``open_shared_stream``) can wrap.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow_provider_cdata.hooks import CDataHook

# (Airflow connection id, child account as the trigger names it; None: the connection's account_id)
PollKey = tuple[str, str | None]


@dataclass(frozen=True)
class Listing:
    """One List Connections answer of a child account, shared by every trigger that asks for it."""

    connections: list[dict[str, Any]]
    listed_at: float  # epoch seconds when the request was sent: the answer is at least this fresh


@dataclass(frozen=True)
class _Answer:
    sent_at: float  # the loop's clock (monotonic) when the request was sent
    listing: Listing | None
    error: Exception | None  # a CDataError, or whatever else the call raised (a bug: fails the trigger)

    def value(self) -> Listing:
        if self.error is not None:
            # Each subscriber raises it afresh: no traceback of another trigger's raise carried along.
            raise self.error.with_traceback(None)
        assert self.listing is not None
        return self.listing


class SharedPoll:
    """The List Connections poll of one (Airflow connection, child account) on one event loop."""

    def __init__(self, key: PollKey) -> None:
        from airflow_provider_cdata.hooks import CDataHook

        self.key = key
        # Built here, so a bad connection id or account id fails the first subscriber as the hook
        # always has (CDataValidationError, naming the field), before anything is sent.
        self._hook: CDataHook = CDataHook(cdata_conn_id=key[0], account_id=key[1])
        self._loop = asyncio.get_running_loop()
        self._answer: _Answer | None = None
        self._flight: asyncio.Task[_Answer] | None = None
        self.subscribers = 0
        self.calls = 0  # List Connections calls made (each with the hook's own retries)

    async def listing(self, max_age: float) -> Listing:
        """The account's connections as listed at most ``max_age`` seconds ago (a call if needed).

        Raises the error of the call that answered (a CDataError, as the hook raises them) for every
        subscriber that gets that answer.
        """
        answer = self._answer
        if answer is None or self._loop.time() - answer.sent_at > max_age:
            answer = await self._fresh_answer()
        return answer.value()

    async def connections(self, max_age: float) -> list[dict[str, Any]]:
        return (await self.listing(max_age)).connections

    @property
    def polling(self) -> bool:
        """A request is in flight."""
        return self._flight is not None

    async def _fresh_answer(self) -> _Answer:
        flight = self._flight
        if flight is None:
            flight = self._flight = self._loop.create_task(self._list())
        # wait(), not await: a subscriber cancelled here (its deadline, the triggerer) leaves the request
        # to the others; the last one leaving cancels it (close()).
        await asyncio.wait({flight})
        return flight.result()

    async def _list(self) -> _Answer:
        sent_at, listed_at = self._loop.time(), time.time()
        self.calls += 1
        try:
            connections = await self._hook.alist_connections(account_id=self.key[1])
            answer = _Answer(sent_at, Listing(connections, listed_at), None)
        except Exception as exc:
            # Kept like an answer, so each asker raises it as its own call would have, and no task is
            # left with an exception nobody retrieved (an asker may have been cancelled meanwhile).
            answer = _Answer(sent_at, None, exc)
        finally:
            self._flight = None
        self._answer = answer
        return answer

    async def close(self) -> None:
        """End a request in flight (awaited until it has unwound) and release the hook's client."""
        flight, self._flight = self._flight, None
        try:
            if flight is not None and not flight.done():
                flight.cancel()
                await asyncio.wait({flight})
        finally:
            await self._hook.aclose()


_polls: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[PollKey, SharedPoll]] = (
    weakref.WeakKeyDictionary()
)


def active_polls() -> dict[PollKey, SharedPoll]:
    """The shared polls of the running event loop with at least one subscriber (a copy)."""
    return dict(_polls.get(asyncio.get_running_loop(), {}))


@asynccontextmanager
async def subscribe(cdata_conn_id: str, account_id: str | None) -> AsyncIterator[SharedPoll]:
    """Join the running loop's poll of this (connection, account), made on first use; leaving as the
    last subscriber stops it. Safe to leave by cancellation."""
    polls = _polls.setdefault(asyncio.get_running_loop(), {})
    key: PollKey = (cdata_conn_id, account_id)
    poll = polls.get(key)
    if poll is None:
        poll = polls[key] = SharedPoll(key)
    poll.subscribers += 1
    try:
        yield poll
    finally:
        poll.subscribers -= 1
        if poll.subscribers == 0:
            # Out of the registry first: a trigger arriving while this one closes starts a new poll.
            if polls.get(key) is poll:
                del polls[key]
            await poll.close()


async def listings(
    cdata_conn_id: str, account_id: str | None, interval: float
) -> AsyncGenerator[Listing, None]:
    """The shared poll as an async iterator: a listing every ``interval`` seconds, each no older than
    ``interval``. A failed call raises its CDataError (the caller decides whether to go on). Close it
    (``contextlib.aclosing``) when leaving early, so the subscription ends then, not at loop shutdown."""
    async with subscribe(cdata_conn_id, account_id) as poll:
        while True:
            yield await poll.listing(interval)
            await asyncio.sleep(interval)
