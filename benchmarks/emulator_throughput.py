"""Figure 6: the emulator's own throughput, so that no other figure measures the emulator's limit.

Authenticated List Connections calls (JWT verified, JSON answered) from the cheapest client there is
(``raw_http``): sequentially on one keep-alive connection, then from 50 connections at once.
"""

from __future__ import annotations

from benchmarks import raw_http
from benchmarks.common import Row
from benchmarks.emulator_process import EmulatorProcess

SEQUENTIAL_CALLS = 2000
CLIENTS = 50
CALLS_PER_CLIENT = 60


def run(emulator: EmulatorProcess) -> list[Row]:
    emulator.add_connections(3)
    token = emulator.token(emulator.account_id)
    request = raw_http.request_bytes("GET", emulator.root_url, "/api/poweredby/connection/list", token)
    sequential = SEQUENTIAL_CALLS / raw_http.elapsed(emulator.root_url, [[request] * SEQUENTIAL_CALLS])
    concurrent = (
        CLIENTS
        * CALLS_PER_CLIENT
        / raw_http.elapsed(emulator.root_url, [[request] * CALLS_PER_CLIENT] * CLIENTS)
    )
    assert emulator.counters().count("list", 200) == SEQUENTIAL_CALLS + CLIENTS * CALLS_PER_CLIENT
    return [
        Row("6 emulator", "List Connections, 1 keep-alive client", f"{sequential:,.0f} calls/s"),
        Row(
            "6 emulator",
            f"List Connections, {CLIENTS} concurrent clients",
            f"{concurrent:,.0f} calls/s",
            rate=concurrent,
        ),
        Row("6 emulator", "per call, server side (1 / sequential rate)", f"{1000 / sequential:.2f} ms"),
    ]
