"""A tiny deferrable operator and trigger for the harness's own DAGs (tests/e2e/dags).

``WaitForEmulatorConnection`` defers at once; ``EmulatorConnectionTrigger``, run by the real triggerer,
polls the emulator's unauthenticated ``/_emulator/state`` until a connection with the wanted
``externalId`` exists, then the task resumes and returns that connection. It stands in for the
provider's own sensor and trigger so the harness can be proved before they exist.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
from airflow.sdk import BaseHook, BaseOperator
from airflow.triggers.base import BaseTrigger, TriggerEvent

CLASSPATH = "tests.e2e.deferrable.EmulatorConnectionTrigger"


class EmulatorConnectionTrigger(BaseTrigger):
    def __init__(self, state_url: str, external_id: str, poll_interval: float = 0.5) -> None:
        super().__init__()  # type: ignore[no-untyped-call]  # Airflow leaves it unannotated
        self.state_url = state_url
        self.external_id = external_id
        self.poll_interval = poll_interval

    def serialize(self) -> tuple[str, dict[str, Any]]:
        kwargs = {"state_url": self.state_url, "external_id": self.external_id}
        return CLASSPATH, {**kwargs, "poll_interval": self.poll_interval}

    async def run(self) -> AsyncIterator[TriggerEvent]:
        async with httpx.AsyncClient(timeout=10, trust_env=False) as client:
            while True:
                answer = await client.get(self.state_url)
                answer.raise_for_status()
                for connection in answer.json()["connections"]:
                    if connection.get("externalId") == self.external_id:
                        self.log.info("Connection %s appeared", connection["id"])
                        yield TriggerEvent({"connection": connection})  # type: ignore[no-untyped-call]
                        return
                await asyncio.sleep(self.poll_interval)


class WaitForEmulatorConnection(BaseOperator):
    """Wait, deferred, until the customer has saved a connection with ``external_id`` in the emulator."""

    template_fields = ("external_id",)

    def __init__(self, *, external_id: str, cdata_conn_id: str = "cdata_default", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.external_id = external_id
        self.cdata_conn_id = cdata_conn_id

    def execute(self, context: Any) -> None:
        # The connection comes from AIRFLOW_CONN_CDATA_DEFAULT in the services' environment.
        api_root = (BaseHook.get_connection(self.cdata_conn_id).host or "").rstrip("/")
        state_url = f"{api_root.removesuffix('/api')}/_emulator/state"
        self.log.info("Deferring until connection %r exists", self.external_id)
        self.defer(
            trigger=EmulatorConnectionTrigger(state_url, self.external_id),
            method_name="execute_complete",
        )

    def execute_complete(self, context: Any, event: dict[str, Any]) -> dict[str, Any]:
        connection: dict[str, Any] = event["connection"]
        self.log.info("Resumed: connection %s (%s) is there", connection["id"], connection["name"])
        return connection
