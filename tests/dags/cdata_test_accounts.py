"""A task that makes every child-account and data-source call of the hook, sync and async, with a
retried 503 and a failed duplicate create among them, for the leak scan (tests/test_reliability_leaks.py):
the parent-level token these calls carry must not reach a log either."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from typing import Any

from airflow.sdk import DAG, task

with DAG("cdata_test_accounts", schedule=None, start_date=datetime(2024, 1, 1), catchup=False):

    @task
    def account_calls() -> dict[str, Any]:
        from airflow_provider_cdata.exceptions import CDataAPIError
        from airflow_provider_cdata.hooks import CDataHook

        hook = CDataHook()
        made = hook.create_account(external_id="leak-tenant", account_name="Leak")
        try:
            hook.create_account(external_id="leak-tenant")
        except CDataAPIError as exc:  # the 409, logged as a task would log it
            logging.getLogger(__name__).warning("duplicate: %s", exc)
        hook.update_account(made["id"], account_name="Leak 2")
        sources = hook.list_data_sources()

        async def twins() -> int:
            listed = await hook.alist_accounts()
            await hook.aget_account("leak-tenant")
            await hook.adelete_account(made["id"])
            await hook.aclose()
            return len(listed)

        listed = asyncio.run(twins())
        return {"id": made["id"], "listed": listed, "sources": len(sources), "minted": hook.tokens_minted}

    account_calls()
