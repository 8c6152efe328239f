"""The bulk operators: Delete Connection (with its safety checks) and Clear Metadata.

Both take ids or the connections ListConnectionsOperator returned, check every id before any request,
try every id even when one fails, and fail at the end naming each id that failed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow_provider_cdata.criteria import last_modified
from airflow_provider_cdata.exceptions import CDataError, CDataValidationError
from airflow_provider_cdata.operators._common import (
    _CDataOperator,
    check_max_concurrency,
    collect_ids,
    listed_ids,
    listed_versions,
    push_and_raise_on_failures,
    require_some_ids,
)
from airflow_provider_cdata.operators._fanout import FanOut, run_on_hook
from airflow_provider_cdata.validation import coerce_bool, coerce_optional_int, validate_uuid

if TYPE_CHECKING:
    from airflow.sdk import Context


class DeleteConnectionOperator(_CDataOperator):
    """Delete connections; returns the ids it deleted.

    :param connection_id: one connection id.
    :param connection_ids: a list of ids, or of connections with an ``id`` (what
        ListConnectionsOperator returns), e.g. ``list_task.output``.
    :param dry_run: delete nothing; log what would be deleted (returns an empty list). Templated,
        so a DAG param can drive it (native objects, or text: true/false, yes/no, on/off, 1/0).
    :param max_deletions: refuse (delete nothing, fail) when asked to delete more than this. Templated.
    :param max_concurrency: deletes in flight at once (1-32, default 1: one at a time, in the given
        order, as before the async fan-out).

    **Safe cleanup.** Connections given as ListConnectionsOperator returned them (dicts with
    ``lastModified``) are listed again right before anything is deleted: one whose ``lastModified``
    changed since (the customer re-authenticated or edited it) is skipped, not deleted, and so is one
    that is no longer listed (already gone: nothing to delete). The skipped ids are logged and pushed
    to XCom under the key ``skipped`` (also in a dry run, which then lists again too). Plain ids, and
    dicts without ``lastModified``, are deleted as given.

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
        max_concurrency: int = 1,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        require_some_ids(connection_id, connection_ids, "DeleteConnectionOperator")
        self.max_concurrency = check_max_concurrency(max_concurrency)
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
        versions = listed_versions(self.connection_ids)
        if max_deletions is not None and len(ids) > max_deletions:
            raise CDataError(
                f"Refusing to delete {len(ids)} connections: more than max_deletions={max_deletions}. "
                "Nothing was deleted."
            )
        if versions:
            skipped = self._changed_since_listed(versions)
            context["ti"].xcom_push(key="skipped", value=skipped)
            ids = [connection_id for connection_id in ids if connection_id not in skipped]
        if dry_run:
            for connection_id in ids:
                self.log.info("Dry run: would delete connection %s", connection_id)
            self.log.info("Dry run: %d connections would be deleted; nothing was deleted", len(ids))
            return []
        deleted, failures = run_on_hook(self.hook, lambda: self._delete_all(ids))
        push_and_raise_on_failures(context, "deleted", deleted, failures, "delete")
        self.log.info("Deleted %d connections", len(deleted))
        return deleted

    def _changed_since_listed(self, versions: dict[str, object]) -> list[str]:
        """The listed connections that must not be deleted: changed since they were listed, or gone.

        One List Connections call of the whole child account, made now: the given listing may be
        hours old (a person approved it, a run waited). A connection whose ``lastModified`` is not the
        listed one, or cannot be read, is skipped: deleting it could undo the customer's fresh work.
        """
        current = self.hook.list_connections(account_id=self.account_id)
        listed_ids(current)  # an unusable listing fails the task here, before anything is deleted
        # Keyed by the canonical id; where CData lists an id twice, the first entry counts.
        now = {validate_uuid(c["id"], "id"): c for c in reversed(current)}
        skipped: list[str] = []
        for connection_id, then in versions.items():
            connection = now.get(connection_id)
            if connection is None:
                self.log.warning("Skipping connection %s: no longer listed (already deleted)", connection_id)
            elif not _same_version(then, connection):
                self.log.warning(
                    "Skipping connection %s: modified since it was listed (lastModified %s, listed %s)",
                    connection_id,
                    connection.get("lastModified"),
                    then,
                )
            else:
                continue
            skipped.append(connection_id)
        if skipped:
            self.log.warning(
                "Skipped %d connections changed or gone since they were listed: %s", len(skipped), skipped
            )
        return skipped

    async def _delete_all(self, ids: list[str]) -> tuple[list[str], dict[str, Exception]]:
        fan_out = FanOut(self.max_concurrency)

        async def delete(connection_id: str) -> None:
            await fan_out.call(
                lambda: self.hook.adelete_connection(connection_id, account_id=self.account_id)
            )
            self.log.info("Deleted connection %s", connection_id)

        return await fan_out.each(ids, delete)


def _same_version(listed: object, connection: dict[str, Any]) -> bool:
    """Whether ``connection`` still has the ``lastModified`` it was listed with.

    Compared as times when both read as ISO 8601 (CData writes a varying number of fraction digits),
    else as the values themselves; nothing readable now means "not the same".
    """
    now = last_modified(connection)
    then = last_modified({"lastModified": listed})
    if now is not None and then is not None:
        return now == then
    return connection.get("lastModified") is not None and connection.get("lastModified") == listed


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
        self.max_concurrency = check_max_concurrency(max_concurrency)
        self.connection_id = connection_id
        self.connection_ids = connection_ids
        self.data_source = data_source

    def execute(self, context: Context) -> list[str]:
        cleared, failures = run_on_hook(self.hook, self._clear_all)
        push_and_raise_on_failures(context, "cleared", cleared, failures, "clear the metadata of")
        self.log.info("Cleared the metadata cache of %d connections", len(cleared))
        return cleared

    async def _clear_all(self) -> tuple[list[str], dict[str, Exception]]:
        # The listing too is made on the loop's session: its connection is then reused by the clears,
        # so the whole task opens at most max_concurrency connections.
        ids = await self._target_ids()
        if not ids:
            self.log.info("No connections to clear")
            return [], {}
        self.log.info(
            "Clearing the metadata cache of %d connections, %d at a time", len(ids), self.max_concurrency
        )
        fan_out = FanOut(self.max_concurrency)

        async def clear(connection_id: str) -> None:
            await fan_out.call(lambda: self.hook.aclear_metadata(connection_id, account_id=self.account_id))
            self.log.debug("Cleared the metadata cache of connection %s", connection_id)

        return await fan_out.each(ids, clear)

    async def _target_ids(self) -> list[str]:
        if self.connection_id is not None or self.connection_ids is not None:
            if self.data_source is not None:
                raise CDataValidationError(
                    "data_source", "data_source selects connections only when no connection ids are given"
                )
            return collect_ids(self.connection_id, self.connection_ids)
        connections = await self.hook.alist_connections(
            account_id=self.account_id, data_source=self.data_source
        )
        return listed_ids(connections)
