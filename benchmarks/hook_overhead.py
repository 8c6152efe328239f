"""Figures 1 and 2: what CDataHook costs over a plain ``requests.Session`` holding one pre-minted token.

Every side makes the same authenticated List Connections call and decodes the JSON: the hook, a plain
``requests.Session`` with requests' defaults, and one with ``trust_env`` off (what the hook's session
does: it reads the proxy environment once instead of on every call), so the last ratio is the cost
of the wrapper alone. They run in short blocks, in a rotating order, so drift in the machine's speed
falls on all alike; a ratio is the median of the per-round block ratios, so a burst of load from
another process on a shared machine spoils one round, not the figure.
Each side makes one untimed warm-up call first; the hook's warm-up (reading the Airflow connection,
loading the key, minting, connecting) is reported on its own row. The emulator counts the TCP
connections; the plain side's own (urllib3's count) is subtracted to get the hook's.
"""

from __future__ import annotations

import itertools
import statistics
import time
from collections.abc import Callable
from typing import Any

import requests

from benchmarks.common import Row, ms
from benchmarks.emulator_process import EmulatorProcess, connections_opened

CALLS = 2000
BLOCK = 20  # calls per block; CALLS // BLOCK rounds, each side one block per round


def _plain_session(token: str, trust_env: bool) -> requests.Session:
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {token}"
    session.trust_env = trust_env
    return session


def run(emulator: EmulatorProcess) -> list[Row]:
    from airflow_provider_cdata import auth
    from airflow_provider_cdata.hooks import CDataHook

    emulator.use_as_cdata_default()
    emulator.add_connections(3)
    list_url = f"{emulator.api_url}/poweredby/connection/list"
    # Pre-minted outside the provider's cache, so the hook still mints (and counts) its own token.
    token = emulator.token(emulator.account_id)
    plains = {"plain": _plain_session(token, True), "plain, trust_env off": _plain_session(token, False)}

    def plain_call(session: requests.Session) -> Callable[[], Any]:
        def call() -> Any:
            answer = session.get(list_url, timeout=30)
            answer.raise_for_status()
            return answer.json()["connections"]

        return call

    auth.clear_token_cache()
    emulator.reset_counters()
    minted_before = auth.tokens_minted_total()
    hook = CDataHook()
    started = time.perf_counter()
    hook.list_connections()
    first_call = time.perf_counter() - started
    sides: dict[str, Callable[[], Any]] = {"hook": hook.list_connections}
    sides.update({name: plain_call(session) for name, session in plains.items()})
    for name, call in sides.items():
        if name != "hook":
            call()  # warm up

    blocks: dict[str, list[float]] = {name: [] for name in sides}
    orders = list(itertools.permutations(sides))
    for round_number in range(CALLS // BLOCK):
        for name in orders[round_number % len(orders)]:
            call = sides[name]
            started = time.perf_counter()
            for _ in range(BLOCK):
                call()
            blocks[name].append(time.perf_counter() - started)

    counters = emulator.counters()
    hook_connections = counters.connections_accepted - sum(map(connections_opened, plains.values()))
    assert hook._transport is not None
    assert hook_connections == connections_opened(hook._transport.session), "the emulator and urllib3 agree"
    minted = auth.tokens_minted_total() - minted_before
    assert counters.count("list", 200) == len(sides) * (CALLS + 1), counters.snapshot
    hook.close()
    for session in plains.values():
        session.close()

    def ratio(name: str) -> float:
        return statistics.median(h / p for h, p in zip(blocks["hook"], blocks[name], strict=True))

    figure = "1 hook overhead"
    per_call = [
        Row(figure, f"{name}, per call", ms(sum(times) / CALLS), rate=CALLS / sum(times))
        for name, times in blocks.items()
    ]
    return [
        *per_call,
        Row(
            figure,
            f"hook / plain requests.Session (median of {CALLS // BLOCK} block pairs)",
            f"{ratio('plain'):.3f}",
            "<= 1.10",
            ratio("plain") <= 1.10,
        ),
        Row(
            figure,
            "hook / plain Session with trust_env off (the wrapper alone)",
            f"{ratio('plain, trust_env off'):.3f}",
            "<= 1.15",
            ratio("plain, trust_env off") <= 1.15,
        ),
        Row(figure, "hook's first call (connection, key, token, TCP)", ms(first_call)),
        Row("2 tokens, TCP", "tokens minted by the hook", str(minted), "1", minted == 1),
        Row(
            "2 tokens, TCP",
            "TCP connections opened by the hook",
            str(hook_connections),
            "1",
            hook_connections == 1,
        ),
    ]
