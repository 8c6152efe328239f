"""Operators for the Powered by CData calls.

Each one renders and validates its arguments, calls the hook, and returns a JSON value for XCom.
The hook (and with it requests, aiohttp and cryptography) is imported when a task runs, not when
a DAG file is parsed: DAG parsing pays only for these modules.

The modules, by concern: ``connections`` (Create, Edit, List), ``bulk`` (Delete, Clear Metadata),
``accounts`` (child accounts: get-or-create, list, delete; List Data Sources),
``approval`` (Airflow's own ApprovalOperator, found or refused clearly), ``_common`` (the base
class, id checks, the bounded fan-out). Every public name is importable from
here.
"""

from __future__ import annotations

from airflow_provider_cdata.operators._common import MAX_CONCURRENCY, collect_ids, listed_ids
from airflow_provider_cdata.operators.accounts import (
    CreateAccountOperator,
    DeleteAccountOperator,
    ListAccountsOperator,
    ListDataSourcesOperator,
)
from airflow_provider_cdata.operators.approval import ApprovalUnavailableError, approval_operator
from airflow_provider_cdata.operators.bulk import ClearMetadataOperator, DeleteConnectionOperator
from airflow_provider_cdata.operators.connections import (
    CreateConnectionOperator,
    EditConnectionOperator,
    ListConnectionsOperator,
)

__all__ = [
    "MAX_CONCURRENCY",
    "ApprovalUnavailableError",
    "ClearMetadataOperator",
    "CreateAccountOperator",
    "CreateConnectionOperator",
    "DeleteAccountOperator",
    "DeleteConnectionOperator",
    "EditConnectionOperator",
    "ListAccountsOperator",
    "ListConnectionsOperator",
    "ListDataSourcesOperator",
    "approval_operator",
    "collect_ids",
    "listed_ids",
]
