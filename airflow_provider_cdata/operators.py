"""Operators for the five Connection Management calls.

Each one renders and validates its arguments, calls the hook, and returns a JSON value for XCom.
The hook (and with it requests, tenacity and cryptography) is imported when a task runs, not when
a DAG file is parsed: DAG parsing pays only for this module.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from airflow_provider_cdata import DEFAULT_CONN_ID
from airflow_provider_cdata.criteria import modified_between, parse_optional_time
from airflow_provider_cdata.exceptions import CDataAPIError, CDataError, CDataValidationError
from airflow_provider_cdata.validation import (
    coerce_bool,
    coerce_optional_int,
    validate_optional_name,
    validate_uuid,
)

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_provider_cdata.hooks import CDataHook


# The hook's session keeps this many keep-alive connections (hooks.SESSION_POOL_SIZE); more threads
# would open and drop a connection per call.
MAX_CONCURRENCY = 32


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


class CreateConnectionOperator(_CDataOperator):
    """Ask CData for a link where the customer creates a connection; returns the connect URL.

    The URL carries a short-lived bearer token (180 s at CData): hand it to the customer at once.
    Its token is masked in Airflow's logs; the XCom value holds the whole URL for your app to read.

    :param data_source: the data source (driver) name, e.g. ``Salesforce``.
    :param redirect_url: where CData sends the customer's browser afterwards (absolute http(s) URL).
    :param connection_name: the connection's name, prefilled on the page.
    :param external_id: your own id for the connection, unique per child account; a
        ``ConnectionSensor(external_id=...)`` can wait for it.
    :param account_id: the child account (JWT ``sub``); default: the Airflow connection's.
    """

    template_fields: Sequence[str] = (
        "data_source",
        "redirect_url",
        "connection_name",
        "external_id",
        "account_id",
    )

    def __init__(
        self,
        *,
        data_source: str,
        redirect_url: str,
        connection_name: str | None = None,
        external_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.data_source = data_source
        self.redirect_url = redirect_url
        self.connection_name = connection_name
        self.external_id = external_id

    def execute(self, context: Context) -> str:
        url = self.hook.create_connection(
            data_source=self.data_source,
            redirect_url=self.redirect_url,
            # Checked here too, so that an error names this operator's argument, not the hook's `name`.
            name=validate_optional_name(self.connection_name, "connection_name"),
            external_id=self.external_id,
            account_id=self.account_id,
        )
        self.log.info("Connect link for a new %s connection: %s", self.data_source, url)
        return url


class EditConnectionOperator(_CDataOperator):
    """Ask CData for a link where the customer edits a connection; returns the connect URL."""

    template_fields: Sequence[str] = ("connection_id", "redirect_url", "account_id")

    def __init__(self, *, connection_id: str, redirect_url: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.connection_id = connection_id
        self.redirect_url = redirect_url

    def execute(self, context: Context) -> str:
        url = self.hook.edit_connection(
            connection_id=self.connection_id, redirect_url=self.redirect_url, account_id=self.account_id
        )
        self.log.info("Connect link to edit connection %s: %s", self.connection_id, url)
        return url


class ListConnectionsOperator(_CDataOperator):
    """List the child account's connections; returns them as a list of dicts.

    ``data_source`` and ``external_id`` are sent to CData as its ``driver`` and ``externalId`` filters.
    ``modified_before`` / ``modified_after`` (a datetime or an ISO 8601 string, so Jinja can fill them,
    e.g. ``"{{ macros.ds_add(ds, -30) }}"``) keep connections whose ``lastModified`` is strictly
    before / after them. A date alone (``"2026-09-02"``, or a ``date``) means midnight UTC of that day.
    """

    template_fields: Sequence[str] = (
        "account_id",
        "data_source",
        "external_id",
        "modified_before",
        "modified_after",
    )

    def __init__(
        self,
        *,
        data_source: str | None = None,
        external_id: str | None = None,
        modified_before: Any = None,
        modified_after: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.data_source = data_source
        self.external_id = external_id
        self.modified_before = modified_before
        self.modified_after = modified_after

    def execute(self, context: Context) -> list[dict[str, Any]]:
        before = parse_optional_time(self.modified_before, "modified_before")
        after = parse_optional_time(self.modified_after, "modified_after")
        connections = self.hook.list_connections(
            account_id=self.account_id, data_source=self.data_source, external_id=self.external_id
        )
        kept = modified_between(connections, after=after, before=before)
        self.log.info("Listed %d connections; %d match the time filters", len(connections), len(kept))
        return kept


def collect_ids(connection_id: object, connection_ids: object) -> list[str]:
    """Validate every id before any request: the single id, then the list (ids, or dicts with ``id``
    such as ListConnectionsOperator returns). Duplicates are dropped, order kept."""
    ids: list[str] = []
    if connection_id is not None:
        ids.append(validate_uuid(connection_id, "connection_id"))
    if connection_ids is not None:
        if isinstance(connection_ids, str | bytes | dict) or not isinstance(connection_ids, Iterable):
            raise CDataValidationError(
                "connection_ids",
                "connection_ids must be a list of connection ids (or of connections with an 'id'), "
                f"not {type(connection_ids).__name__}",
            )
        for index, item in enumerate(connection_ids):
            value = item.get("id") if isinstance(item, dict) else item
            ids.append(validate_uuid(value, f"connection_ids[{index}]"))
    return list(dict.fromkeys(ids))


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


def _require_some_ids(connection_id: object, connection_ids: object, operator: str) -> None:
    if connection_id is None and connection_ids is None:
        raise CDataValidationError("connection_id", f"{operator} needs connection_id or connection_ids")


class DeleteConnectionOperator(_CDataOperator):
    """Delete connections; returns the ids it deleted.

    :param connection_id: one connection id.
    :param connection_ids: a list of ids, or of connections with an ``id`` (what
        ListConnectionsOperator returns), e.g. ``list_task.output``.
    :param dry_run: delete nothing; log what would be deleted (returns an empty list). Templated,
        so a DAG param can drive it (native objects, or text: true/false, yes/no, on/off, 1/0).
    :param max_deletions: refuse (delete nothing, fail) when asked to delete more than this. Templated.

    Every delete is tried even when one fails; the task then fails naming every id that failed, and
    the ids that were deleted are pushed to XCom under the key ``deleted``.
    """

    # ``is_dry_run``, not ``dry_run``: that name is BaseOperator's own method (``tasks test --dry-run``).
    template_fields: Sequence[str] = (
        "connection_id",
        "connection_ids",
        "account_id",
        "is_dry_run",
        "max_deletions",
    )

    def __init__(
        self,
        *,
        connection_id: str | None = None,
        connection_ids: Any = None,
        dry_run: bool | str = False,
        max_deletions: int | str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        _require_some_ids(connection_id, connection_ids, "DeleteConnectionOperator")
        if not isinstance(max_deletions, str):  # a template is checked once rendered
            coerce_optional_int(max_deletions, "max_deletions")
        self.connection_id = connection_id
        self.connection_ids = connection_ids
        self.is_dry_run = dry_run
        self.max_deletions = max_deletions

    def execute(self, context: Context) -> list[str]:
        dry_run = coerce_bool(self.is_dry_run, "dry_run")
        max_deletions = coerce_optional_int(self.max_deletions, "max_deletions")
        ids = collect_ids(self.connection_id, self.connection_ids)
        if max_deletions is not None and len(ids) > max_deletions:
            raise CDataError(
                f"Refusing to delete {len(ids)} connections: more than max_deletions={max_deletions}. "
                "Nothing was deleted."
            )
        if dry_run:
            for connection_id in ids:
                self.log.info("Dry run: would delete connection %s", connection_id)
            self.log.info("Dry run: %d connections would be deleted; nothing was deleted", len(ids))
            return []
        deleted, failures = _run_each(ids, self._delete, max_workers=1)
        _push_and_raise_on_failures(context, "deleted", deleted, failures, "delete")
        self.log.info("Deleted %d connections", len(deleted))
        return deleted

    def _delete(self, connection_id: str) -> None:
        self.hook.delete_connection(connection_id, account_id=self.account_id)
        self.log.info("Deleted connection %s", connection_id)


class ClearMetadataOperator(_CDataOperator):
    """Clear the metadata cache of connections; returns the ids it cleared.

    With no ids it clears every connection of the child account (optionally only those of one
    ``data_source``): the scheduled metadata refresh. Up to ``max_concurrency`` clears run at once;
    one failure does not stop the others, and the task fails at the end naming every id that failed
    (the ids that were cleared are pushed to XCom under the key ``cleared``). A listed connection
    without a usable id (none, not a UUID string) fails the task before anything is cleared; an id
    listed twice is cleared once.
    """

    template_fields: Sequence[str] = ("connection_id", "connection_ids", "account_id", "data_source")

    def __init__(
        self,
        *,
        connection_id: str | None = None,
        connection_ids: Any = None,
        data_source: str | None = None,
        max_concurrency: int = 4,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if (
            not isinstance(max_concurrency, int)
            or isinstance(max_concurrency, bool)
            or not 1 <= max_concurrency <= MAX_CONCURRENCY
        ):
            raise CDataValidationError(
                "max_concurrency", f"max_concurrency must be an integer from 1 to {MAX_CONCURRENCY}"
            )
        self.connection_id = connection_id
        self.connection_ids = connection_ids
        self.data_source = data_source
        self.max_concurrency = max_concurrency

    def execute(self, context: Context) -> list[str]:
        ids = self._target_ids()
        if not ids:
            self.log.info("No connections to clear")
            return []
        self.log.info(
            "Clearing the metadata cache of %d connections, %d at a time", len(ids), self.max_concurrency
        )
        cleared, failures = _run_each(ids, self._clear, max_workers=self.max_concurrency)
        _push_and_raise_on_failures(context, "cleared", cleared, failures, "clear the metadata of")
        self.log.info("Cleared the metadata cache of %d connections", len(cleared))
        return cleared

    def _target_ids(self) -> list[str]:
        if self.connection_id is not None or self.connection_ids is not None:
            if self.data_source is not None:
                raise CDataValidationError(
                    "data_source", "data_source selects connections only when no connection ids are given"
                )
            return collect_ids(self.connection_id, self.connection_ids)
        connections = self.hook.list_connections(account_id=self.account_id, data_source=self.data_source)
        return listed_ids(connections)

    def _clear(self, connection_id: str) -> None:
        self.hook.clear_metadata(connection_id, account_id=self.account_id)
        self.log.debug("Cleared the metadata cache of connection %s", connection_id)


def _run_each(
    ids: list[str], call: Callable[[str], None], max_workers: int
) -> tuple[list[str], dict[str, Exception]]:
    """Call ``call(id)`` for every id, at most ``max_workers`` at once; collect successes and failures."""
    done: list[str] = []
    failures: dict[str, Exception] = {}

    def attempt(connection_id: str) -> None:
        try:
            call(connection_id)
        except CDataError as exc:
            failures[connection_id] = exc
        else:
            done.append(connection_id)

    if max_workers == 1 or len(ids) == 1:
        for connection_id in ids:
            attempt(connection_id)
    else:
        with ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="cdata") as pool:
            list(pool.map(attempt, ids))
    order = {connection_id: index for index, connection_id in enumerate(ids)}
    return sorted(done, key=order.__getitem__), failures


def _push_and_raise_on_failures(
    context: Context, key: str, done: list[str], failures: dict[str, Exception], verb: str
) -> None:
    if not failures:
        return
    context["ti"].xcom_push(key=key, value=done)
    details = "; ".join(f"{connection_id}: {error}" for connection_id, error in failures.items())
    raise CDataError(
        f"Could not {verb} {len(failures)} of {len(failures) + len(done)} connections "
        f"({', '.join(failures)}). {details}"
    )
