"""Everything one emulator instance holds, shared by its HTTP app and its Python API."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from airflow_provider_cdata.emulator.faults import FaultInjector
from airflow_provider_cdata.emulator.metrics import Counters
from airflow_provider_cdata.emulator.state import Clock, Store
from airflow_provider_cdata.emulator.tokens import FlowTokens


@dataclass
class EmulatorContext:
    store: Store
    clock: Clock
    flow_tokens: FlowTokens
    faults: FaultInjector = field(default_factory=FaultInjector)
    counters: Counters = field(default_factory=Counters)
    # Open transports by client address, so a "drop" fault can close the very connection it is on.
    transports: dict[tuple[str, int], asyncio.Transport] = field(default_factory=dict)
