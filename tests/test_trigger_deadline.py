"""ConnectionTrigger fires its timeout at its deadline, whatever its poll is doing (issue 16, defect 4).

A poll is bounded by the hook's timeout and retries (minutes with the defaults), the wait by the
sensor's deadline. Against a loopback CData that accepts and never answers, or answers 503 with a
long ``Retry-After``, the trigger must still fire its timeout event at its deadline, and cancelling
the poll must leave nothing behind: no pending task, no connection left open to CData, no request
slot of the event loop's shared client taken. A trigger the triggerer cancels (its task cleared, the
triggerer stopping) unwinds the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from airflow_provider_cdata.emulator import KeyPair
from airflow_provider_cdata.hooks import RetryPolicy
from tests.dag_runner import run_dag
from tests.loopback import LoopbackServer, Serving

# One poll may take (MAX_RETRIES + 1) x TIMEOUT, or MAX_RETRIES x Retry-After (capped at 60 s): far
# past the 1 s deadline, so a trigger that waits for its poll misses the deadline by tens of seconds.
TIMEOUT = 10
MAX_RETRIES = 2
EMPTY_LIST = b'{"connections": []}'

Script = Callable[[int], bytes | None]  # the n-th request (from 1) -> the response, or None: never answer


def response(status: int, body: bytes = b"", **headers: str) -> bytes:
    """A keep-alive HTTP/1.1 response."""
    lines = [f"HTTP/1.1 {status} X", "Content-Type: application/json", f"Content-Length: {len(body)}"]
    lines += [f"{name.replace('_', '-')}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


@dataclass
class StallingCData(LoopbackServer):
    """A loopback HTTP server that answers each request as ``script`` says, or holds it unanswered
    until the client closes the connection. It counts requests and the connections still open."""

    script: Script
    requests: int = 0
    open_connections: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.listen()

    def accepted(self, conn: socket.socket) -> None:
        with self.lock:
            self.open_connections += 1

    def serve(self, conn: socket.socket) -> None:
        conn.settimeout(0.1)
        buffered, answering = b"", True
        try:
            while not self.stopping.is_set():
                if answering and b"\r\n\r\n" in buffered:  # GETs only: no request body to read
                    _, _, buffered = buffered.partition(b"\r\n\r\n")
                    with self.lock:
                        self.requests += 1
                        number = self.requests
                    answer = self.script(number)
                    if answer is None:
                        answering = False  # hold it: read on only to see the client go away
                    else:
                        conn.sendall(answer)
                    continue
                try:
                    chunk = conn.recv(65536)
                except TimeoutError:
                    continue
                if not chunk:
                    return  # the client closed the connection
                buffered += chunk
        except OSError:
            return
        finally:
            conn.close()
            with self.lock:
                self.open_connections -= 1

    def wait_until(self, condition: Callable[[], bool], seconds: float = 5) -> bool:
        deadline = time.monotonic() + seconds
        while not condition() and time.monotonic() < deadline:
            time.sleep(0.02)
        return condition()


@pytest.fixture
def stalling(
    keys: KeyPair, monkeypatch: pytest.MonkeyPatch, fast_retries: RetryPolicy
) -> Iterator[Callable[[Script], StallingCData]]:
    """Start a StallingCData and point ``cdata_default`` at it (timeout 10 s, 2 retries).

    Backoff between retries stays short (``fast_retries``); Retry-After is honoured as the hook's policy
    says (<= 60 s)."""
    with Serving(monkeypatch, keys, timeout=TIMEOUT, max_retries=MAX_RETRIES) as serving:
        yield lambda script: serving(StallingCData(script))


def never_answer(number: int) -> bytes | None:
    return None


def busy_for_an_hour(number: int) -> bytes | None:
    return response(503, b'{"error": {"code": 503, "message": "busy"}}', Retry_After="3600")


def trigger(deadline: float) -> Any:
    from airflow_provider_cdata.triggers import ConnectionTrigger

    return ConnectionTrigger(criteria={"external_id": "never"}, poke_interval=0.2, deadline=deadline)


@dataclass
class LoopReport:
    """What an event loop saw besides the coroutine's own result."""

    exceptions: list[dict[str, Any]] = field(default_factory=list)  # the loop's exception handler calls
    pending: list[asyncio.Task[Any]] = field(default_factory=list)  # tasks still pending at the end


def run_on_a_fresh_loop(main: Coroutine[Any, Any, Any]) -> tuple[Any, LoopReport]:
    """Run ``main`` as a triggerer's loop would, and report every task left pending and every error
    the loop reported (such as "Task was destroyed but it is pending!"), after a garbage collection."""
    report = LoopReport()
    loop = asyncio.new_event_loop()
    loop.set_exception_handler(lambda _, context: report.exceptions.append(context))

    async def observed() -> Any:
        result = await main
        await asyncio.sleep(0)  # let callbacks scheduled by the cancellation run
        report.pending = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        return result

    try:
        result = loop.run_until_complete(observed())
        loop.run_until_complete(loop.shutdown_asyncgens())
    finally:
        loop.close()
    gc.collect()
    return result, report


async def all_request_slots_free(client: Any) -> bool:
    """Every one of the shared client's request slots can be taken at once, without waiting."""
    from airflow_provider_cdata.transport.aio import ASYNC_POOL_SIZE, PoolTimeout, request_slot

    try:
        async with contextlib.AsyncExitStack() as slots:
            for _ in range(ASYNC_POOL_SIZE):
                await slots.enter_async_context(request_slot(client, 0.01))
    except PoolTimeout:
        return False
    return True


async def with_the_shared_client(
    api_url: str, work: Callable[[], Coroutine[Any, Any, Any]]
) -> tuple[Any, bool, int]:
    """Run ``work`` while another user (another trigger) holds the loop's shared client, so closing
    the client cannot hide a leak: ``work``'s result, whether every request slot is free afterwards,
    and how many hooks still use the client (this holder only, if ``work`` released its own)."""
    from airflow_provider_cdata.transport.aio import shared_clients

    client = shared_clients.acquire(api_url)
    try:
        result = await work()
        return result, await all_request_slots_free(client), shared_clients.users(api_url)
    finally:
        await shared_clients.release(api_url, client)


def the_event(outcome: tuple[Any, bool, int]) -> dict[str, Any]:
    events, slots_free, users = outcome
    assert slots_free, "the cancelled poll gave its request slot back"
    assert users == 1, "the trigger's hook released the shared client"
    assert len(events) == 1, events
    payload: dict[str, Any] = events[0].payload
    return payload


@pytest.mark.parametrize(
    ("cdata", "requests"),
    [(never_answer, 1), (busy_for_an_hour, 1)],
    ids=["accepts and never answers", "503 with Retry-After 3600"],
)
def test_the_trigger_times_out_at_its_deadline_while_a_poll_is_in_flight(
    stalling: Callable[[Script], StallingCData], cdata: Script, requests: int
) -> None:
    server = stalling(cdata)
    fired_after: list[float] = []

    async def wait() -> list[Any]:
        started = time.monotonic()
        events = [event async for event in trigger(time.time() + 1).run()]
        fired_after.append(time.monotonic() - started)
        return events

    outcome, report = run_on_a_fresh_loop(with_the_shared_client(server.url, wait))
    (elapsed,) = fired_after
    event = the_event(outcome)
    assert event["status"] == "timeout", event
    assert "never" in event["message"]
    assert 0.9 <= elapsed < 1.5, f"the timeout event came {elapsed:.2f} s after a 1 s deadline"
    assert server.requests == requests, "the first poll was still in flight at the deadline"
    assert server.wait_until(lambda: server.open_connections == 0, 2), "no connection left open"
    assert report.pending == []
    assert report.exceptions == [], "nothing the loop had to report (a task destroyed while pending...)"


def test_a_trigger_the_triggerer_cancels_unwinds_its_poll_the_same_way(
    stalling: Callable[[Script], StallingCData],
) -> None:
    """The triggerer cancels the task that iterates ``run()`` when the task instance is cleared or
    the triggerer stops; the poll in flight must end with it, as at the deadline."""
    server = stalling(never_answer)

    async def cancelled_mid_poll() -> float:
        running = asyncio.ensure_future(anext(trigger(time.time() + 600).run()))
        while server.requests == 0:
            await asyncio.sleep(0.01)
        cancelled_at = time.monotonic()
        running.cancel()
        with pytest.raises(asyncio.CancelledError):
            await running
        return time.monotonic() - cancelled_at

    (unwound_in, slots_free, users), report = run_on_a_fresh_loop(
        with_the_shared_client(server.url, cancelled_mid_poll)
    )
    assert unwound_in < 0.5, f"the cancelled trigger took {unwound_in:.2f} s to end"
    assert slots_free, "the cancelled poll gave its request slot back"
    assert users == 1, "the trigger's hook released the shared client"
    assert server.wait_until(lambda: server.open_connections == 0, 2), "no connection left open"
    assert report.pending == []
    assert report.exceptions == []


def first_poll_answered(number: int) -> bytes | None:
    """The sensor's own first poke (in the worker) sees no connection; every poll after it hangs."""
    return response(200, EMPTY_LIST) if number == 1 else None


@pytest.mark.parametrize("soft_fail", [False, True])
def test_the_deferred_sensor_times_out_on_time_while_cdata_hangs(
    stalling: Callable[[Script], StallingCData], monkeypatch: pytest.MonkeyPatch, soft_fail: bool
) -> None:
    """dag.test() runs the trigger in-line: the sensor (timeout 1.5 s) fails, or skips with
    soft_fail, as it does for any timeout, and does not wait for the hung poll's 30 s of retries."""
    from airflow_provider_cdata.triggers import ConnectionTrigger

    late: list[float] = []  # how long after its deadline the trigger fired
    run = ConnectionTrigger.run

    async def timed_run(self: ConnectionTrigger) -> AsyncIterator[Any]:
        async for event in run(self):
            late.append(time.time() - (self.deadline or 0))
            yield event

    monkeypatch.setattr(ConnectionTrigger, "run", timed_run)
    server = stalling(first_poll_answered)
    result = run_dag(f"cdata_test_sensor_deferrable_timeout{'_soft' if soft_fail else ''}")
    assert result.task_states() == {"wait": "skipped" if soft_fail else "failed"}
    assert server.requests >= 2, "the trigger polled (and its poll hung)"
    assert len(late) == 1
    assert late[0] < 0.5, f"the trigger fired {late[0]:.1f} s after its deadline"
