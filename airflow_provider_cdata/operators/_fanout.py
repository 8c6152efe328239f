"""The bulk operators' fan-out: many hook calls on the hook's async path, one event loop per
``execute``, at most ``max_concurrency`` requests in flight, every failure collected.

Why async and not a thread pool: a thread per call in flight pays the sync client's CPU (requests)
and the GIL's hand-offs on every call; on the aiohttp session the same clears cost a fraction of it
(benchmarks/, figure 3), and 32 in flight take 32 coroutines, not 32 threads.

The bound is a semaphore held around each HTTP call, never around an item that makes calls of its
own (a child account whose connections are deleted first): a nested fan-out then shares the same
bound without waiting on itself.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine, Iterator, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from airflow_provider_cdata.exceptions import CDataError

if TYPE_CHECKING:
    from airflow_provider_cdata.hooks import CDataHook

T = TypeVar("T")


class FanOut:
    """At most ``limit`` hook calls in flight, on the event loop that made it."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._slots = asyncio.Semaphore(limit)

    async def call(self, request: Callable[[], Awaitable[T]]) -> T:
        """Make one HTTP call (``request()``) once a slot is free."""
        async with self._slots:
            return await request()

    async def each(
        self, ids: Sequence[str], attempt: Callable[[str], Awaitable[None]]
    ) -> tuple[list[str], dict[str, Exception]]:
        """``attempt(id)`` for every id; the ids it did, in the given order, and the failures by id.

        A CDataError fails that id alone; anything else (a bug, a cancellation) stops the whole run.
        ``limit`` workers take the ids in turn, rather than a task per id: 5,000 ids make 32 coroutines.
        """
        done: set[str] = set()
        failures: dict[str, Exception] = {}
        pending: Iterator[str] = iter(ids)

        async def worker() -> None:
            for item_id in pending:  # shared: each id is taken by one worker
                try:
                    await attempt(item_id)
                except CDataError as exc:
                    failures[item_id] = exc
                else:
                    done.add(item_id)

        workers = [asyncio.ensure_future(worker()) for _ in range(min(self.limit, len(ids)))]
        try:
            await asyncio.gather(*workers)
        except BaseException:
            for task in workers:
                task.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
            raise
        # Failures in the given order too: the final error names them the same way on every run.
        ordered_failures = {item_id: failures[item_id] for item_id in ids if item_id in failures}
        return [item_id for item_id in ids if item_id in done], ordered_failures


def run_on_hook(hook: CDataHook, work: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run ``work()`` on an event loop of its own and close the hook's async session at the end.

    One loop per ``execute``: the hook's aiohttp session belongs to the loop that opened it, so it
    is closed (``aclose``) on that loop before the loop ends, also when ``work`` fails.
    """

    async def with_session() -> T:
        try:
            return await work()
        finally:
            await hook.aclose()

    return asyncio.run(with_session())
