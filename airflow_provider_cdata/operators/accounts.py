"""The child-account operators: get-or-create, list, delete (refusing one that still has connections),
and the data sources CData offers.

Account calls are parent-level (their JWT has no ``sub``); ``account_id`` here names the account
acted on, never the token's subject.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from airflow_provider_cdata.exceptions import CDataAPIError, CDataError, CDataValidationError
from airflow_provider_cdata.operators._common import (
    _CDataOperator,
    check_max_concurrency,
    listed_ids,
    push_and_raise_on_failures,
)
from airflow_provider_cdata.operators._fanout import FanOut, run_on_hook
from airflow_provider_cdata.validation import coerce_bool, coerce_optional_int, validate_uuid

if TYPE_CHECKING:
    from airflow.sdk import Context


def _checked_external_id(value: object) -> str:
    # The hook's own check, under this operator's field name; imported when the task runs (DAG files
    # import this module while they are parsed).
    from airflow_provider_cdata.transport.payloads import account_external_id

    return account_external_id(value, "external_id")


class CreateAccountOperator(_CDataOperator):
    """Get or create the child account of a tenant; returns it (``{"id", "externalId", "accountName",
    "created"}``).

    Safe to retry and to run twice at once: an account with that ``external_id`` is returned as it
    is; otherwise one is created, and a duplicate answer from Create Account (409: an earlier attempt
    whose answer was lost, or another run, made it first) means "look it up". Either way exactly one
    child account has that external id.

    :param external_id: your platform's own id of the tenant (CData's ``externalId``, unique per parent).
    :param account_name: the name of an account this creates (an existing one keeps its name).
    """

    template_fields: Sequence[str] = ("external_id", "account_name")

    def __init__(self, *, external_id: str, account_name: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.external_id = external_id
        self.account_name = account_name

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow_provider_cdata.transport.payloads import account_body

        external_id = _checked_external_id(self.external_id)
        account_body(external_id, self.account_name)  # every argument checked before any request
        found = self._find(external_id)
        if found is not None:
            self.log.info("Child account %s (external id %r) exists", found["id"], external_id)
            return found
        try:
            created = self.hook.create_account(external_id=external_id, account_name=self.account_name)
        except CDataAPIError as exc:
            if exc.status_code != 409:
                raise
            # Made meanwhile: by this call's own earlier attempt whose answer was lost, or another run.
            found = self._find(external_id)
            if found is None:
                raise
            self.log.info(
                "Child account %s (external id %r) was created meanwhile; using it", found["id"], external_id
            )
            return found
        # Create answers no name (CData's answer has accountId, externalId, createdTime): it is ours.
        account = {**created, "accountName": created.get("accountName") or self.account_name}
        self.log.info("Created child account %s (external id %r)", account["id"], external_id)
        return account

    def _find(self, external_id: str) -> dict[str, Any] | None:
        account = self.hook.get_account(external_id)
        # Get Account takes an id or an external id: an external id that is another account's id must
        # not return that account.
        if account is not None and account.get("externalId") == external_id:
            return account
        return None


class ListAccountsOperator(_CDataOperator):
    """Every child account of the parent; returns a list of ``{"id", "externalId", "accountName",
    "created"}``."""

    def execute(self, context: Context) -> list[dict[str, Any]]:
        accounts = self.hook.list_accounts()
        self.log.info("Listed %d child accounts", len(accounts))
        return accounts


class ListDataSourcesOperator(_CDataOperator):
    """The names of the data sources CData offers (what ``data_source`` takes); returns a list."""

    def execute(self, context: Context) -> list[str]:
        names = self.hook.list_data_sources()
        self.log.info("CData offers %d data sources", len(names))
        return names


def collect_account_ids(account_id: object, account_ids: object) -> list[str]:
    """Every account id checked before any request: the single one, then the list (ids, or accounts
    with an ``id``, as ListAccountsOperator and CreateAccountOperator return them). Order kept, once each."""
    ids: list[str] = []
    if account_id is not None:
        ids.append(validate_uuid(account_id, "account_id"))
    if account_ids is not None:
        if isinstance(account_ids, str | bytes | dict) or not isinstance(account_ids, Iterable):
            raise CDataValidationError(
                "account_ids",
                "account_ids must be a list of account ids (or of accounts with an 'id'), "
                f"not {type(account_ids).__name__}",
            )
        for index, item in enumerate(account_ids):
            value = item.get("id") if isinstance(item, dict) else item
            ids.append(validate_uuid(value, f"account_ids[{index}]"))
    return list(dict.fromkeys(ids))


class DeleteAccountOperator(_CDataOperator):
    """Delete child accounts; returns the ids it deleted.

    :param account_id: one child account id (the account to delete).
    :param account_ids: a list of ids, or of accounts with an ``id`` (what ListAccountsOperator returns).
    :param dry_run: delete nothing; log what would be deleted (returns an empty list). Templated.
    :param max_deletions: refuse (delete nothing, fail) when asked to delete more accounts. Templated.
    :param delete_connections: delete an account's connections first. Without it, an account that still
        has connections is refused: the task fails naming it (and its connections' count), and nothing
        at all is deleted (a dry run logs the refusal instead of failing). Templated.
    :param max_concurrency: deletes in flight at once, connections and accounts together (1-32,
        default 1: one at a time, in the given order, as before the async fan-out).

    Every account's connections are listed before anything is deleted; an account that no longer
    exists counts as deleted (a retry of this task). Every delete is tried even
    when one fails (an account whose connections could not all be deleted is not deleted); the task
    then fails naming every id that failed, with XCom ``deleted`` (accounts) and
    ``deleted_connections`` (connection ids) pushed.
    """

    template_fields: Sequence[str] = (
        "account_id",
        "account_ids",
        "is_dry_run",
        "max_deletions",
        "delete_connections",
    )

    def __init__(
        self,
        *,
        account_id: str | None = None,
        account_ids: Any = None,
        dry_run: bool | str = False,
        max_deletions: int | str | None = None,
        delete_connections: bool | str = False,
        max_concurrency: int = 1,
        **kwargs: Any,
    ) -> None:
        super().__init__(account_id=account_id, **kwargs)
        if account_id is None and account_ids is None:
            raise CDataValidationError("account_id", "DeleteAccountOperator needs account_id or account_ids")
        self.max_concurrency = check_max_concurrency(max_concurrency)
        if not isinstance(max_deletions, str):  # a template is checked once rendered
            coerce_optional_int(max_deletions, "max_deletions")
        self.account_ids = account_ids
        self.is_dry_run = dry_run
        self.max_deletions = max_deletions
        self.delete_connections = delete_connections
        self._deleted_connections: list[str] = []

    def execute(self, context: Context) -> list[str]:
        dry_run = coerce_bool(self.is_dry_run, "dry_run")
        max_deletions = coerce_optional_int(self.max_deletions, "max_deletions")
        with_connections = coerce_bool(self.delete_connections, "delete_connections")
        ids = collect_account_ids(self.account_id, self.account_ids)
        if max_deletions is not None and len(ids) > max_deletions:
            raise CDataError(
                f"Refusing to delete {len(ids)} child accounts: more than max_deletions={max_deletions}. "
                "Nothing was deleted."
            )
        # An account already gone (a retry after this task deleted it) has nothing to list or delete.
        gone = [account for account in ids if self.hook.get_account(account) is None]
        for account in gone:
            self.log.info("Child account %s does not exist (already deleted)", account)
        connections = {account: self._connection_ids(account) for account in ids if account not in gone}
        occupied = {account: found for account, found in connections.items() if found}
        if occupied and not with_connections:
            named = ", ".join(f"{account} ({len(found)} connections)" for account, found in occupied.items())
            if dry_run:
                # Not a failure: in a dry run, the step that would delete those connections first did
                # not delete them either (the offboarding example).
                self.log.warning(
                    "Dry run: a real run would refuse, as these still have connections: %s", named
                )
                return []
            raise CDataError(
                f"Refusing to delete child accounts that still have connections: {named}. Nothing was "
                "deleted. Delete their connections first, or pass delete_connections=True."
            )
        if dry_run:
            for account in connections:
                self.log.info(
                    "Dry run: would delete child account %s and its %d connections",
                    account,
                    len(connections[account]),
                )
            self.log.info("Dry run: %d child accounts would be deleted; nothing was deleted", len(ids))
            return []
        self._deleted_connections = []
        deleted, failures = run_on_hook(self.hook, lambda: self._delete_all(ids, connections))
        if self._deleted_connections or failures:
            context["ti"].xcom_push(key="deleted_connections", value=self._deleted_connections)
        push_and_raise_on_failures(context, "deleted", deleted, failures, "delete", "child accounts")
        self.log.info("Deleted %d child accounts", len(deleted))
        return deleted

    def _connection_ids(self, account: str) -> list[str]:
        return listed_ids(self.hook.list_connections(account_id=account))

    async def _delete_all(
        self, ids: list[str], connections: dict[str, list[str]]
    ) -> tuple[list[str], dict[str, Exception]]:
        fan_out = FanOut(self.max_concurrency)
        return await fan_out.each(
            ids, lambda account: self._delete(fan_out, account, connections.get(account))
        )

    async def _delete(self, fan_out: FanOut, account: str, connection_ids: list[str] | None) -> None:
        if connection_ids is None:
            return  # already gone: deleted, as delete_account's own retries count it
        if connection_ids:

            async def delete_connection(connection_id: str) -> None:
                await fan_out.call(lambda: self.hook.adelete_connection(connection_id, account_id=account))

            # The same fan-out: its bound holds for the connections and the accounts together.
            gone, failures = await fan_out.each(connection_ids, delete_connection)
            self._deleted_connections.extend(gone)
            self.log.info("Deleted %d connections of child account %s", len(gone), account)
            if failures:
                details = "; ".join(f"{cid}: {error}" for cid, error in failures.items())
                raise CDataError(
                    f"{len(failures)} of its {len(connection_ids)} connections could not be deleted, so the "
                    f"account was not: {details}"
                )
        await fan_out.call(lambda: self.hook.adelete_account(account))
        self.log.info("Deleted child account %s", account)
