"""The hook's child-account and data-source calls (issue 11), mixed into
:class:`~airflow_provider_cdata.hooks.CDataHook`; use them from there.

These calls are parent-level: their routes say so (``Route.parent_level``), so the JWT they carry has
no ``sub`` and the hook needs no child account for them; the token cache keeps that one parent token
beside the per-child ones. Arguments are checked before anything is sent (:mod:`.transport.payloads`),
and every account returned has one shape, ``{"id", "externalId", "accountName", "created"}``
(:mod:`.transport.accounts`), whatever names CData's answer used.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from airflow_provider_cdata.exceptions import CDataAPIError
from airflow_provider_cdata.transport.accounts import decode_account, decode_accounts, decode_data_sources
from airflow_provider_cdata.transport.payloads import account_body, account_ref, update_account_body
from airflow_provider_cdata.transport.routes import Answer, Call
from airflow_provider_cdata.validation import validate_uuid

if TYPE_CHECKING:
    from airflow_provider_cdata.connection import ConnectionSettings

# The hook's logger: one name for every line the provider's calls write (see hooks.py).
log = logging.getLogger("airflow_provider_cdata.hooks")


class AccountCalls:
    """Create, get, list, update and delete child accounts; list data sources. Sync and async."""

    if TYPE_CHECKING:  # provided by CDataHook

        def _ready(self) -> ConnectionSettings: ...
        async def _aready(self) -> ConnectionSettings: ...
        def _call(
            self,
            settings: ConnectionSettings,
            route_name: str,
            account_id: str | None,
            *,
            connection_id: str | None = None,
            path_params: Mapping[str, str] | None = None,
            json: dict[str, Any] | None = None,
            params: dict[str, str] | None = None,
        ) -> Call: ...
        def _request(self, call: Call, max_retries: int | None = None, remint: bool = True) -> Answer: ...
        async def _arequest(
            self, call: Call, max_retries: int | None = None, remint: bool = True
        ) -> Answer: ...

    # -- sync ----------------------------------------------------------------------------------------
    def create_account(
        self, external_id: str | None = None, account_name: str | None = None
    ) -> dict[str, Any]:
        """Create a child account; ``external_id`` is the platform's own tenant id (unique per parent:
        CData answers a duplicate with an error, 409 from the emulator). Returns the account.

        Retried as every call, except that without an external id it is not sent again after an attempt
        that may have been carried out (a 5xx, a lost answer): a second account would be made, with
        nothing to find the first by. With one, such a retry answers 409: look the account up."""
        body = account_body(external_id, account_name)
        call = _create_call(self._call(self._ready(), "account_create", None, json=body))
        return decode_account(call, self._request(call))

    def get_account(self, id_or_external_id: str) -> dict[str, Any] | None:
        """The child account with this account id or external id; ``None`` when CData answers 404."""
        where = {"id_or_external_id": account_ref(id_or_external_id)}
        call = self._call(self._ready(), "account_get", None, path_params=where)
        try:
            return decode_account(call, self._request(call))
        except CDataAPIError as exc:
            if exc.status_code == 404:
                return None
            raise

    def list_accounts(self) -> list[dict[str, Any]]:
        """Every child account of the parent."""
        call = self._call(self._ready(), "account_list", None)
        return decode_accounts(call, self._request(call))

    def update_account(
        self, account_id: str, external_id: str | None = None, account_name: str | None = None
    ) -> dict[str, Any]:
        """Change a child account's external id and/or name (at least one); returns the account."""
        where, body = _update_parts(account_id, external_id, account_name)
        call = self._call(self._ready(), "account_update", None, path_params=where, json=body)
        return decode_account(call, self._request(call))

    def delete_account(self, account_id: str) -> None:
        """Delete a child account (in the emulator, its remaining connections with it). Idempotent as
        :meth:`delete_connection`: a 404 after an attempt whose answer was lost means already gone; a
        404 on the first attempt raises (CData does not know the id)."""
        where = {"account_id": validate_uuid(account_id, "account_id")}
        call = self._call(self._ready(), "account_delete", None, path_params=where)
        log_already_gone(call, self._request(call))

    def list_data_sources(self) -> list[str]:
        """The names of the data sources CData offers (for ``create_connection``'s ``data_source``)."""
        call = self._call(self._ready(), "sources", None)
        return decode_data_sources(call, self._request(call))

    # -- async ---------------------------------------------------------------------------------------
    async def acreate_account(
        self, external_id: str | None = None, account_name: str | None = None
    ) -> dict[str, Any]:
        body = account_body(external_id, account_name)
        call = _create_call(self._call(await self._aready(), "account_create", None, json=body))
        return decode_account(call, await self._arequest(call))

    async def aget_account(self, id_or_external_id: str) -> dict[str, Any] | None:
        where = {"id_or_external_id": account_ref(id_or_external_id)}
        call = self._call(await self._aready(), "account_get", None, path_params=where)
        try:
            return decode_account(call, await self._arequest(call))
        except CDataAPIError as exc:
            if exc.status_code == 404:
                return None
            raise

    async def alist_accounts(self) -> list[dict[str, Any]]:
        call = self._call(await self._aready(), "account_list", None)
        return decode_accounts(call, await self._arequest(call))

    async def aupdate_account(
        self, account_id: str, external_id: str | None = None, account_name: str | None = None
    ) -> dict[str, Any]:
        where, body = _update_parts(account_id, external_id, account_name)
        call = self._call(await self._aready(), "account_update", None, path_params=where, json=body)
        return decode_account(call, await self._arequest(call))

    async def adelete_account(self, account_id: str) -> None:
        where = {"account_id": validate_uuid(account_id, "account_id")}
        call = self._call(await self._aready(), "account_delete", None, path_params=where)
        log_already_gone(call, await self._arequest(call))

    async def alist_data_sources(self) -> list[str]:
        call = self._call(await self._aready(), "sources", None)
        return decode_data_sources(call, await self._arequest(call))


def _create_call(call: Call) -> Call:
    """Create Account without an external id is not repeatable (see ``Route.repeatable``)."""
    if call.json and "externalId" in call.json:
        return call
    return dataclasses.replace(call, route=call.route._replace(repeatable=False))


def _update_parts(
    account_id: str, external_id: str | None, account_name: str | None
) -> tuple[dict[str, str], dict[str, Any]]:
    # Checked before the connection is read, like every other argument: bad input sends nothing.
    where = {"account_id": validate_uuid(account_id, "account_id")}
    return where, update_account_body(external_id, account_name)


def log_already_gone(call: Call, answer: Answer) -> None:
    if answer.status == 404:  # settle() let it through: an earlier attempt's answer was lost
        log.info(
            "CData API %s %s answered 404 on attempt %d: already gone, deleted by an earlier attempt "
            "whose answer was lost",
            call.method,
            call.path,
            answer.attempts,
        )
