"""The trigger as it polled before the shared poll (issue 12): its own List Connections call every
interval, with the criteria's filters, through its own hook. Figure 4 measures it side by side with
the shared poll in the same run; the provider itself no longer polls this way."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from airflow_provider_cdata.criteria import ConnectionCriteria
from airflow_provider_cdata.hooks import CDataHook
from airflow_provider_cdata.triggers import ConnectionSource, ConnectionTrigger


class _OwnCalls:
    def __init__(self, hook: CDataHook, account_id: str | None, criteria: ConnectionCriteria) -> None:
        self.hook, self.account_id, self.criteria = hook, account_id, criteria

    async def connections(self, max_age: float) -> list[dict[str, Any]]:
        return await self.hook.alist_connections(
            account_id=self.account_id,
            data_source=self.criteria.data_source,
            external_id=self.criteria.external_id,
        )


class PerTriggerPollingTrigger(ConnectionTrigger):
    """ConnectionTrigger with one call per trigger per interval (no sharing)."""

    @asynccontextmanager
    async def _subscribe(self) -> AsyncIterator[ConnectionSource]:
        hook = CDataHook(cdata_conn_id=self.cdata_conn_id, account_id=self.account_id)
        try:
            yield _OwnCalls(hook, self.account_id, ConnectionCriteria.from_dict(self.criteria))
        finally:
            await hook.aclose()
