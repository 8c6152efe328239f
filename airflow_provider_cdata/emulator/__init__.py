"""An emulator of the Powered by CData API: a real HTTP server for tests, benchmarks and demos.

Run it with ``python -m airflow_provider_cdata.emulator`` or in-process with :class:`Emulator`.
It is a test double, not a service to expose: its ``/_emulator`` admin routes have no auth.
"""

from airflow_provider_cdata.emulator.customer import ConnectFlowError, complete_flow
from airflow_provider_cdata.emulator.faults import FaultRule, parse_fault_spec
from airflow_provider_cdata.emulator.keys import KeyPair, generate_key_pair
from airflow_provider_cdata.emulator.server import DemoCredentials, Emulator

__all__ = [
    "ConnectFlowError",
    "DemoCredentials",
    "Emulator",
    "FaultRule",
    "KeyPair",
    "complete_flow",
    "generate_key_pair",
    "parse_fault_spec",
]
