"""What the CData operators share: the base class with its hook, id checks, and the bounded fan-out
with failure collection of the bulk operators."""

from __future__ import annotations

from collections.abc import Iterable
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from airflow_provider_cdata import DEFAULT_CONN_ID, SESSION_POOL_SIZE
from airflow_provider_cdata.exceptions import CDataAPIError, CDataError, CDataValidationError
from airflow_provider_cdata.validation import validate_uuid

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_provider_cdata.hooks import CDataHook


# The bulk operators' cap on calls in flight: the connections of the hook's async session
# (ASYNC_POOL_SIZE, equal to SESSION_POOL_SIZE). More in flight than the session holds would only
# queue in the session's request slots, and would then count against each call's timeout.
MAX_CONCURRENCY = SESSION_POOL_SIZE


class _CDataOperator(BaseOperator):
    """What every CData operator has: the Airflow connection, the child account, and the hook."""

    ui_color = "#e8f4fd"

    def __init__(self, *, cdata_conn_id: str = DEFAULT_CONN_ID, account_id: str | None = None, **kwargs: Any):
        super().__init__(**kwargs)
        self.cdata_conn_id = cdata_conn_id
        self.account_id = account_id

    @cached_property
    def hook(self) -> CDataHook:
        from airflow_provider_cdata.hooks import CDataHook

        return CDataHook(cdata_conn_id=self.cdata_conn_id, account_id=self.account_id)


def _check_id_list(connection_ids: object) -> Iterable[Any]:
    if isinstance(connection_ids, str | bytes | dict) or not isinstance(connection_ids, Iterable):
        raise CDataValidationError(
            "connection_ids",
            "connection_ids must be a list of connection ids (or of connections with an 'id'), "
            f"not {type(connection_ids).__name__}",
        )
    return connection_ids


def collect_ids(connection_id: object, connection_ids: object) -> list[str]:
    """Validate every id before any request: the single id, then the list (ids, or dicts with ``id``
    such as ListConnectionsOperator returns). Duplicates are dropped, order kept."""
    ids: list[str] = []
    if connection_id is not None:
        ids.append(validate_uuid(connection_id, "connection_id"))
    if connection_ids is not None:
        for index, item in enumerate(_check_id_list(connection_ids)):
            value = item.get("id") if isinstance(item, dict) else item
            ids.append(validate_uuid(value, f"connection_ids[{index}]"))
    return list(dict.fromkeys(ids))


def listed_versions(connection_ids: object) -> dict[str, object]:
    """The ``lastModified`` of every listed connection given in ``connection_ids``, by its id.

    Only dicts that carry ``lastModified`` (what ListConnectionsOperator returns) are in it: they say
    which version of the connection was listed. A plain id, or a dict with an ``id`` alone, says
    nothing about the version. Call :func:`collect_ids` first: it checks the ids.
    """
    versions: dict[str, object] = {}
    if connection_ids is None:
        return versions
    for item in _check_id_list(connection_ids):
        if isinstance(item, dict) and "lastModified" in item:
            # The first listing of an id wins, as collect_ids keeps the first occurrence.
            versions.setdefault(validate_uuid(item.get("id"), "id"), item["lastModified"])
    return versions


def listed_ids(connections: list[dict[str, Any]]) -> list[str]:
    """The ids of the connections List Connections answered, checked before anything is done with them.

    CData's answer is untrusted input: a connection without an ``id``, or whose id is not a UUID string,
    makes the answer unusable (``CDataAPIError`` naming the entry, before any request is sent), as a
    listing that is not a list of objects does in the hook. An id listed twice counts once, order kept.
    """
    ids: list[str] = []
    for index, connection in enumerate(connections):
        try:
            ids.append(validate_uuid(connection["id"], "id"))
            continue
        except KeyError:
            problem = "it has no 'id'"
        except CDataValidationError as exc:
            problem = exc.message
        name = connection.get("name")
        label = f" ({_short(name)})" if isinstance(name, str) else ""
        # The route table is imported here, on the error path only: DAG files import this module.
        from airflow_provider_cdata.transport.routes import ROUTES

        raise CDataAPIError(
            ROUTES["list"].method,
            ROUTES["list"].path,
            200,
            f"answered connections[{index}]{label} without a usable id ({problem}); nothing was done",
        )
    return list(dict.fromkeys(ids))


def _short(text: str) -> str:
    shown = repr(text)
    return shown if len(shown) <= 60 else f"{shown[:57]}..."


def require_some_ids(connection_id: object, connection_ids: object, operator: str) -> None:
    if connection_id is None and connection_ids is None:
        raise CDataValidationError("connection_id", f"{operator} needs connection_id or connection_ids")


def check_max_concurrency(max_concurrency: object) -> int:
    """``max_concurrency`` checked when the operator is made: an int from 1 to MAX_CONCURRENCY."""
    if (
        not isinstance(max_concurrency, int)
        or isinstance(max_concurrency, bool)
        or not 1 <= max_concurrency <= MAX_CONCURRENCY
    ):
        raise CDataValidationError(
            "max_concurrency", f"max_concurrency must be an integer from 1 to {MAX_CONCURRENCY}"
        )
    return max_concurrency


def push_and_raise_on_failures(
    context: Context,
    key: str,
    done: list[str],
    failures: dict[str, Exception],
    verb: str,
    noun: str = "connections",
) -> None:
    if not failures:
        return
    context["ti"].xcom_push(key=key, value=done)
    details = "; ".join(f"{item_id}: {error}" for item_id, error in failures.items())
    raise CDataError(
        f"Could not {verb} {len(failures)} of {len(failures) + len(done)} {noun} "
        f"({', '.join(failures)}). {details}"
    )
