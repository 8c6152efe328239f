"""What one answer may cost: the connection's ``timeout`` bounds each attempt as a whole, a body that
does not decode is a retried CDataAPIError, and no body is read past MAX_BODY_BYTES once decoded.

Each case is a hostile server on loopback (tests/test_reliability_hostile.py's RawServer), run on the
sync and the async path; the undecodable body also through ClearMetadataOperator (dag.test()) and
ConnectionTrigger.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import socket
import time
import tracemalloc
import zlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from airflow_provider_cdata.emulator import KeyPair
from airflow_provider_cdata.exceptions import CDataAPIError
from airflow_provider_cdata.hooks import CDataHook, RetryPolicy
from airflow_provider_cdata.transport.body import MAX_BODY_BYTES
from tests.dag_runner import run_dag
from tests.loopback import Serving
from tests.test_hook_calls import Runner, runner_fixture
from tests.test_reliability_hostile import Answer, RawServer, http, send

run = runner_fixture()

TIMEOUT = 1.0
MAX_RETRIES = 1
DRIP_SECONDS = 0.2  # a byte (or a chunk) this often: every read comes well within the timeout
DRIP_FOR = 12.0  # how long a server drips before it gives up (without the bound, a call lasts this)
IDS = [
    "0b5f7d5c-3e1a-4c55-9a66-2f3b1e7c9d10",
    "1c6e8e6d-4f2b-4d66-8b77-3a4c2f8d0e21",
    "2d7f9f7e-5a3c-4e77-9c88-4b5d3a9e1f32",
]
LIST = b'{"connections": [{"id": "0b5f7d5c-3e1a-4c55-9a66-2f3b1e7c9d10", "externalId": "crm-7"}]}'


@pytest.fixture
def hostile(
    keys: KeyPair, monkeypatch: pytest.MonkeyPatch, fast_retries: RetryPolicy
) -> Iterator[Callable[..., RawServer]]:
    """Start a RawServer with the given answer and point ``cdata_default`` at it."""
    with Serving(monkeypatch, keys, timeout=TIMEOUT) as serving:

        def start(answer: Answer, max_retries: int = MAX_RETRIES) -> RawServer:
            return serving(RawServer(answer), max_retries=max_retries)

        yield start


def drip(conn: socket.socket, pieces: list[bytes], stopping: Any) -> None:
    """Send each piece DRIP_SECONDS after the last, for at most DRIP_FOR seconds."""
    ends = time.monotonic() + DRIP_FOR
    for piece in pieces:
        if stopping.is_set() or time.monotonic() > ends:
            return
        conn.sendall(piece)
        time.sleep(DRIP_SECONDS)


def dripping(kind: str, server_box: list[RawServer]) -> Answer:
    def answer(conn: socket.socket, _: bytes) -> None:
        stopping = server_box[0].stopping
        if kind == "head":  # the status line and headers, a byte at a time
            whole = http(200, b'{"connections": []}')
            drip(conn, [whole[i : i + 1] for i in range(len(whole))], stopping)
        elif kind == "body":  # the headers at once, then a 1,000-byte body a byte at a time
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n")
            drip(conn, [b" "] * 1000, stopping)
        else:  # an endless chunked body: a chunk of one byte, again and again
            conn.sendall(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
            )
            drip(conn, [b"1\r\n \r\n"] * 10_000, stopping)

    return answer


# -- defect 3: the timeout bounds each attempt ---------------------------------------------------------
@pytest.mark.parametrize("kind", ["head", "body", "endless chunked body"])
def test_a_trickling_server_times_out_each_attempt_at_the_timeout(
    hostile: Callable[..., RawServer], run: Runner, kind: str
) -> None:
    box: list[RawServer] = []
    box.append(hostile(dripping(kind, box)))
    started = time.monotonic()
    with pytest.raises(CDataAPIError) as caught:
        run(CDataHook(), "list_connections")
    elapsed = time.monotonic() - started
    error = caught.value
    assert error.status_code is None
    assert "timed out" in error.message, error
    assert error.retryable
    assert error.attempts == MAX_RETRIES + 1
    attempts = MAX_RETRIES + 1
    assert attempts * TIMEOUT * 0.9 <= elapsed < attempts * TIMEOUT + 1.0, f"{elapsed:.2f} s"


# -- defect 6: a body that does not decode --------------------------------------------------------------
JSON_GZIP = gzip.compress(json.dumps({"connections": [{"id": IDS[0], "name": "x" * 5000}]}).encode())
UNDECODABLE = {
    "gzip that is not gzip": http(200, b"this is not gzip at all", Content_Encoding="gzip"),
    "deflate that is not deflate": http(200, b"\xff\xfe this is not deflate", Content_Encoding="deflate"),
    "gzip cut short, well framed": http(200, JSON_GZIP[: len(JSON_GZIP) // 2], Content_Encoding="gzip"),
}


@pytest.mark.parametrize("name", UNDECODABLE)
def test_a_body_that_does_not_decode_is_a_retried_api_error(
    hostile: Callable[..., RawServer], run: Runner, name: str
) -> None:
    server = hostile(send(UNDECODABLE[name]))
    with pytest.raises(CDataAPIError) as caught:
        run(CDataHook(), "list_connections")
    error = caught.value
    assert error.status_code == 200
    assert "body that does not decode" in error.message, error
    assert error.retryable
    assert error.attempts == len(server.requests) == MAX_RETRIES + 1
    assert len(str(error)) < 400


def answers_in_turn(*responses: bytes) -> Answer:
    """Each request gets the next response; the last one is repeated."""
    sent: list[int] = []

    def answer(conn: socket.socket, _: bytes) -> None:
        conn.sendall(responses[min(len(sent), len(responses) - 1)])
        sent.append(1)

    return answer


def test_a_corrupt_body_then_a_good_one_is_a_good_call(
    hostile: Callable[..., RawServer], run: Runner
) -> None:
    good = http(200, gzip.compress(LIST), Content_Encoding="gzip")
    server = hostile(answers_in_turn(UNDECODABLE["gzip that is not gzip"], good))
    assert run(CDataHook(), "list_connections") == json.loads(LIST)["connections"]
    assert len(server.requests) == 2


def test_clear_metadata_pushes_what_it_cleared_when_one_answer_does_not_decode(
    hostile: Callable[..., RawServer],
) -> None:
    def by_id(conn: socket.socket, head: bytes) -> None:
        corrupt = IDS[1].encode() in head.split(b"\r\n", 1)[0]
        conn.sendall(UNDECODABLE["gzip that is not gzip"] if corrupt else http(200, b"{}"))

    server = hostile(by_id, max_retries=1)
    result = run_dag("cdata_test_clear", {"ids": IDS})
    assert result.state == "failed"
    assert sorted(result.xcom("clear", key="cleared")) == sorted([IDS[0], IDS[2]])
    assert sum(IDS[1].encode() in r for r in server.requests) == 2, "the corrupt one was retried"


def test_the_trigger_keeps_waiting_through_bodies_that_do_not_decode(
    hostile: Callable[..., RawServer],
) -> None:
    from airflow_provider_cdata.triggers import ConnectionTrigger

    corrupt = UNDECODABLE["gzip that is not gzip"]
    server = hostile(answers_in_turn(corrupt, corrupt, http(200, LIST)), max_retries=0)
    trigger = ConnectionTrigger(
        criteria={"external_id": "crm-7"}, poke_interval=0.05, deadline=time.time() + 30
    )

    async def the_events() -> list[dict[str, Any]]:
        return [event.payload async for event in trigger.run()]

    (event,) = asyncio.run(the_events())
    assert event["status"] == "success", event
    assert event["connection"]["id"] == IDS[0]
    assert len(server.requests) == 3


# -- defect 7: no body past the cap ---------------------------------------------------------------------
def _bomb(coding: str, size: int) -> bytes:
    compressor = zlib.compressobj(
        9, zlib.DEFLATED, 16 + zlib.MAX_WBITS if coding == "gzip" else zlib.MAX_WBITS
    )
    zeros = bytes(1024 * 1024)
    return b"".join([*(compressor.compress(zeros) for _ in range(size // len(zeros))), compressor.flush()])


BOMB_SIZE = 4 * MAX_BODY_BYTES  # 64 MiB decoded, ~64 KB sent
OVER = MAX_BODY_BYTES + 1024 * 1024


def chunked(total: int, piece: int = 1024 * 1024) -> Answer:
    def answer(conn: socket.socket, _head: bytes) -> None:
        conn.sendall(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        block = b"%x\r\n" % piece + b" " * piece + b"\r\n"
        for _ in range(total // piece):
            conn.sendall(block)
        conn.sendall(b"0\r\n\r\n")

    return answer


OVERSIZED: dict[str, Callable[[], Answer]] = {
    "a gzip bomb": lambda: send(http(200, _bomb("gzip", BOMB_SIZE), Content_Encoding="gzip")),
    "a deflate bomb": lambda: send(http(200, _bomb("deflate", BOMB_SIZE), Content_Encoding="deflate")),
    "a plain body over the cap": lambda: send(http(200, b" " * OVER)),
    "a chunked plain body over the cap": lambda: chunked(OVER),
}


@pytest.mark.parametrize("name", OVERSIZED)
def test_a_body_over_the_cap_is_refused_without_holding_it(
    hostile: Callable[..., RawServer], run: Runner, name: str
) -> None:
    server = hostile(OVERSIZED[name]())
    hook = CDataHook()
    hook.settings  # noqa: B018  # read the connection (and the key) before measuring
    tracemalloc.start()
    try:
        with pytest.raises(CDataAPIError) as caught:
            run(hook, "list_connections")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    error = caught.value
    assert error.status_code == 200
    assert "over the 16 MiB limit" in error.message, error
    assert not error.retryable
    assert len(server.requests) == 1, "a 200 this large is not asked again"
    assert peak < MAX_BODY_BYTES + 8 * 1024 * 1024, f"held {peak / 2**20:.0f} MiB"
