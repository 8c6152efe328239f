"""ConnectionEventTrigger: an asset watcher's trigger that fires when a customer's connection is ready.

Scheduled on an ``Asset`` with an ``AssetWatcher`` (Airflow 3's event-driven scheduling), it watches one
child account (default: the Airflow connection's ``account_id``) or every child account of the parent,
through the event loop's shared poll of each account (:mod:`airflow_provider_cdata.polling`: the same
one List Connections per interval that the deferrable sensors of that account use).

Its first poll is the baseline: what is listed then is not an event. Afterwards it yields one event per
connection that appeared or changed (``lastModified`` or ``status``) and matches (the accepted statuses,
optionally one data source): ``{"connection": {...}, "account_id": ..., "change": "created"|"changed"}``.
The same connection state fires at most once in a triggerer's life (no infinite scheduling: a
connection that stays ``Authenticated`` is not an event again).

Restarts (README "Restarts and the asset state store"): where Airflow injects an asset state store (3.3+),
the trigger keeps there the states of the ready connections it has seen, written one poll behind what it
yields; a new triggerer starts from that instead of a fresh baseline, so a connection that became ready
while none was watching is delivered, and one yielded in the last poll before a crash may be delivered
again (at most one ``poll_interval`` of events). Without a store (3.1, 3.2) a restart takes a fresh
baseline: what became ready meanwhile is not delivered.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from airflow.triggers.base import BaseEventTrigger, TriggerEvent

from airflow_provider_cdata import DEFAULT_CONN_ID
from airflow_provider_cdata._compat import WatermarkStore
from airflow_provider_cdata.criteria import ConnectionCriteria
from airflow_provider_cdata.exceptions import CDataError, CDataValidationError

if TYPE_CHECKING:
    from airflow_provider_cdata.hooks import CDataHook
    from airflow_provider_cdata.polling import SharedPoll

CLASSPATH = "airflow_provider_cdata.triggers.ConnectionEventTrigger"
CREATED, CHANGED = "created", "changed"
MAX_ERROR_BACKOFF_SECONDS = 300.0


def fingerprint(connection: dict[str, Any]) -> str:
    """A connection's state as far as events go: a new one of these is a change."""
    return f"{connection.get('lastModified')}|{connection.get('status')}"


class ConnectionEventTrigger(BaseEventTrigger):
    """Yield an event each time a matching connection appears or changes in the watched account(s)."""

    def __init__(
        self,
        cdata_conn_id: str = DEFAULT_CONN_ID,
        account_id: str | None = None,
        all_accounts: bool = False,
        data_source: str | None = None,
        statuses: str | list[str] | tuple[str, ...] | None = ("Authenticated",),
        poll_interval: float = 60.0,
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]  # Airflow leaves it unannotated
        if isinstance(poll_interval, bool) or not isinstance(poll_interval, int | float) or poll_interval < 1:
            raise CDataValidationError(
                "poll_interval", f"poll_interval must be a number of seconds >= 1: {poll_interval!r}"
            )
        if all_accounts and account_id is not None:
            raise CDataValidationError(
                "all_accounts", "account_id and all_accounts=True exclude each other: give one"
            )
        # Validated now (naming the field), so a bad watcher fails when the DAG is parsed.
        self._criteria = ConnectionCriteria.build(data_source=data_source, statuses=statuses)
        self.cdata_conn_id = cdata_conn_id
        self.account_id = account_id
        self.all_accounts = bool(all_accounts)
        self.data_source = data_source
        accepted = self._criteria.statuses  # None: any status
        self.statuses = None if accepted is None else list(accepted)
        self.poll_interval = float(poll_interval)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        # The classpath users import it from; its kwargs are the trigger's hash (one trigger per value).
        return (
            CLASSPATH,
            {
                "cdata_conn_id": self.cdata_conn_id,
                "account_id": self.account_id,
                "all_accounts": self.all_accounts,
                "data_source": self.data_source,
                "statuses": self.statuses,
                "poll_interval": self.poll_interval,
            },
        )

    def state_key(self) -> str:
        """Where this watcher keeps its states in the asset's store: one key per scope, so two watchers
        of one asset (other accounts, another data source) keep theirs apart."""
        scope = "*" if self.all_accounts else (self.account_id or "default")
        statuses = "*" if self.statuses is None else ",".join(sorted(self.statuses))
        return f"cdata:{self.cdata_conn_id}:{scope}:{self.data_source or '*'}:{statuses}"

    async def run(self) -> AsyncIterator[TriggerEvent]:
        from airflow_provider_cdata.hooks import CDataHook

        store = WatermarkStore(getattr(self, "asset_state_store", None), self.state_key(), self.log)
        hook = CDataHook(cdata_conn_id=self.cdata_conn_id)
        polls: dict[str | None, tuple[contextlib.AbstractAsyncContextManager[SharedPoll], SharedPoll]] = {}
        try:
            stored = await store.load()
            seen: dict[str, str] | None = None  # connection id -> fingerprint, all in scope
            fired: set[tuple[str, str]] = set()
            behind: dict[str, str] | None = None  # the ready states of the previous poll: stored next
            failures = 0
            while True:
                try:
                    listed = await self._list(hook, polls)
                except CDataError as exc:
                    # A watcher keeps watching: log, back off, retry (an error event would schedule a run).
                    failures += 1
                    pause = min(self.poll_interval * 2 ** (failures - 1), MAX_ERROR_BACKOFF_SECONDS)
                    self.log.warning("Listing CData connections failed (%s); again in %.0f s", exc, pause)
                    await asyncio.sleep(max(pause, self.poll_interval))
                    continue
                failures = 0
                if seen is None:
                    # The baseline: the stored states after a restart (3.3+), else what is listed now.
                    now = {c["id"]: fingerprint(c) for _, c in listed}
                    seen = dict(stored) if stored is not None else now
                for account, connection in listed:
                    state, previous = fingerprint(connection), seen.get(connection["id"])
                    seen[connection["id"]] = state
                    if state == previous or not self._criteria.matches(connection):
                        continue
                    if (connection["id"], state) in fired:
                        continue  # that state came back (a status flip): it has fired already
                    fired.add((connection["id"], state))
                    yield TriggerEvent(  # type: ignore[no-untyped-call]
                        {
                            "connection": copy.deepcopy(connection),  # the listing is shared
                            "account_id": account,
                            "change": CREATED if previous is None else CHANGED,
                        }
                    )
                # One poll behind: what was yielded a poll ago has reached the triggerer's database by
                # now, so a crash redelivers at most one interval of events and loses none.
                if behind is not None and behind != stored and await store.save(behind):
                    stored = behind
                ready_ids = {c["id"] for _, c in listed if self._criteria.matches(c)}
                behind = {cid: state for cid, state in seen.items() if cid in ready_ids}
                await asyncio.sleep(self.poll_interval)
        finally:
            for manager, _ in polls.values():
                await manager.__aexit__(None, None, None)
            await hook.aclose()

    async def _list(
        self,
        hook: CDataHook,
        polls: dict[str | None, tuple[contextlib.AbstractAsyncContextManager[SharedPoll], SharedPoll]],
    ) -> list[tuple[str | None, dict[str, Any]]]:
        """(child account, connection) for every connection of the watched account(s), from the shared
        polls; in every-account mode the accounts are listed afresh each poll (new ones are joined,
        deleted ones left)."""
        from airflow_provider_cdata.polling import subscribe

        if self.all_accounts:
            accounts: list[str | None] = [str(a["id"]) for a in await hook.alist_accounts()]
        else:
            accounts = [self.account_id]
        for gone in set(polls) - set(accounts):
            manager, _ = polls.pop(gone)
            await manager.__aexit__(None, None, None)
        listed: list[tuple[str | None, dict[str, Any]]] = []
        for account in accounts:
            if account not in polls:
                manager = subscribe(self.cdata_conn_id, account)
                polls[account] = (manager, await manager.__aenter__())
            listing = await polls[account][1].listing(self.poll_interval)
            name = account if account is not None else (await hook._aready()).account_id
            listed.extend((name, c) for c in listing.connections if "id" in c)
        return listed
