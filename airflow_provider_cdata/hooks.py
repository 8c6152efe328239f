"""CDataHook: the one place that talks to the Powered by CData API (connections, child accounts, sources).

The hook reads the Airflow connection (:mod:`.connection`), mints and caches the JWTs (:mod:`.auth`),
and makes each public call: it validates the arguments, sends the call through the sync or the async
transport (:mod:`.transport`) under the one retry policy, and re-mints the token once after a 401.
Operators, the sensor and the triggers only call it. The connection's fields and extras are described
in :mod:`airflow_provider_cdata.connection`. The names
that lived here before the split (``ROUTES``, ``RetryPolicy``, ``mask_connect_url``, the settings and
their limits, ...) are still importable from this module.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Mapping
from typing import Any

from airflow_provider_cdata import (
    CONN_TYPE,
    DEFAULT_CONN_ID,
    DEFAULT_MAX_RETRIES,
    DEFAULT_TIMEOUT,
    DEFAULT_TOKEN_LIFETIME,
    MAX_RETRIES_LIMIT,
    MAX_TIMEOUT,
    SESSION_POOL_SIZE,
    TOKEN_LIFETIME_RANGE,
    _cdata_connection_type,
)
from airflow_provider_cdata._compat import (
    AirflowNotFoundException,
    BaseHook,
    amask_secret,
    field_behaviour,
    form_widgets,
    mask_secret,
    secrets_stay_in_process,
)
from airflow_provider_cdata._masking import (
    MAX_MASKED_TOKENS,
    amask,
    amask_connect_url,
    amask_private_key,
    mask,
    mask_connect_url,
    mask_private_key,
    token_mask_budget,
)
from airflow_provider_cdata.auth import Clock, LoadedKey, TokenMinter, cached_key
from airflow_provider_cdata.connection import (
    ConnectionSettings,
    load_key,
    missing_connection,
    settings_from_connection,
)
from airflow_provider_cdata.exceptions import CDataAPIError, CDataError, CDataValidationError
from airflow_provider_cdata.hook_accounts import AccountCalls, log_already_gone
from airflow_provider_cdata.transport.aio import ASYNC_POOL_SIZE, AsyncTransport
from airflow_provider_cdata.transport.answers import (
    SNIPPET_LENGTH,
    decode_connect_url,
    decode_connections,
    settle,
)
from airflow_provider_cdata.transport.payloads import create_body, edit_body, list_params
from airflow_provider_cdata.transport.retry import RetryPolicy
from airflow_provider_cdata.transport.routes import ROUTES, USER_AGENT, Answer, Call, CallState, Route
from airflow_provider_cdata.transport.sync import SyncTransport
from airflow_provider_cdata.validation import validate_name, validate_uuid

__all__ = [  # CDataHook, and what was importable from here before the split
    "ASYNC_POOL_SIZE",
    "DEFAULT_MAX_RETRIES",
    "DEFAULT_TIMEOUT",
    "DEFAULT_TOKEN_LIFETIME",
    "MAX_MASKED_TOKENS",
    "MAX_RETRIES_LIMIT",
    "MAX_TIMEOUT",
    "ROUTES",
    "SESSION_POOL_SIZE",
    "SNIPPET_LENGTH",
    "TOKEN_LIFETIME_RANGE",
    "USER_AGENT",
    "CDataHook",
    "ConnectionSettings",
    "RetryPolicy",
    "Route",
    "amask_secret",
    "mask_connect_url",
    "mask_secret",
    "settings_from_connection",
    "token_mask_budget",
]

# A stdlib logger, not self.log: Airflow routes stdlib records into task and triggerer logs (through its
# secrets masker), and they honour the usual logging levels, so DEBUG request lines can be switched on.
# The transports and the retry policy log on it too: one name for every line the provider's calls write.
log = logging.getLogger(__name__)


class CDataHook(AccountCalls, BaseHook):
    """Talk to the Powered by CData Connection Management API with an Airflow connection of type ``cdata``.

    The child-account and data-source calls (``create_account``, ``list_data_sources``, ... and their
    async twins) come from :class:`~airflow_provider_cdata.hook_accounts.AccountCalls`.

    :param cdata_conn_id: the Airflow connection id (default ``cdata_default``)
    :param account_id: the child account (JWT ``sub``) for calls that do not name one; default: the
        connection's extra ``account_id``
    """

    conn_name_attr = "cdata_conn_id"
    default_conn_name = DEFAULT_CONN_ID
    conn_type = CONN_TYPE
    hook_name = "Powered by CData"

    # Shared by every hook; tests may replace it with one that backs off faster.
    retry_policy: RetryPolicy = RetryPolicy()

    # The connection form for Airflow before 3.2, which reads it from these two methods; 3.2+ reads the
    # provider info's conn-fields / ui-field-behaviour and never calls them. Both come from that one
    # declaration (airflow_provider_cdata/__init__.py).
    @classmethod
    def get_connection_form_widgets(cls) -> dict[str, Any]:
        """The extra fields of the connection form (wtforms fields, as Airflow 3.1 reads them)."""
        return form_widgets(_cdata_connection_type()["conn-fields"])

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """Hidden, relabelled and placeholder standard fields of the connection form (Airflow 3.1)."""
        return field_behaviour(_cdata_connection_type()["ui-field-behaviour"])

    def __init__(self, cdata_conn_id: str = DEFAULT_CONN_ID, account_id: str | None = None) -> None:
        super().__init__()
        self.cdata_conn_id = validate_name(cdata_conn_id, "cdata_conn_id")
        self.account_id = validate_uuid(account_id, "account_id") if account_id is not None else None
        # Epoch seconds for token minting; tests move it instead of sleeping.
        self.clock: Clock = time.time
        self._settings: ConnectionSettings | None = None
        self._minter: TokenMinter | None = None
        self._transport: SyncTransport | None = None
        self._atransport: AsyncTransport | None = None
        # ClearMetadataOperator calls one hook from several threads: one connection read, one session.
        self._init_lock = threading.Lock()
        self._aready_lock: tuple[asyncio.AbstractEventLoop, asyncio.Lock] | None = None

    # -- public sync API ---------------------------------------------------------------------------
    def create_connection(
        self,
        data_source: str | None = None,
        redirect_url: str | None = None,
        name: str | None = None,
        external_id: str | None = None,
        account_id: str | None = None,
        editable_name: bool | None = None,
    ) -> str:
        """Ask CData for a connect URL where the customer creates a connection: of ``data_source``, or
        (``None``) of the one the customer picks on CData's page; ``redirect_url`` is required (a
        keyword since ``data_source`` may be left out). ``external_id`` must be
        unique in the child account (a duplicate: CDataAPIError 409); ``editable_name=False`` locks the
        name field to ``name``. Only the arguments given are sent."""
        body = create_body(data_source, redirect_url, name, external_id, editable_name)
        settings = self._ready()
        call = self._call(settings, "create", account_id, json=body)
        return mask_connect_url(decode_connect_url(call, self._request(call), settings.api_url))

    def edit_connection(
        self,
        connection_id: str,
        redirect_url: str,
        account_id: str | None = None,
        name: str | None = None,
        editable_name: bool | None = None,
    ) -> str:
        """Ask CData for a connect URL where the customer edits connection ``connection_id`` (``name``:
        the name to suggest, or with ``editable_name=False`` to enforce)."""
        connection_id = validate_uuid(connection_id, "connection_id")
        body = edit_body(redirect_url, name, editable_name)
        settings = self._ready()
        call = self._call(settings, "edit", account_id, connection_id=connection_id, json=body)
        return mask_connect_url(decode_connect_url(call, self._request(call), settings.api_url))

    def list_connections(
        self, account_id: str | None = None, data_source: str | None = None, external_id: str | None = None
    ) -> list[dict[str, Any]]:
        """The child account's connections, optionally only one data source or one external id."""
        params = list_params(data_source, external_id)
        call = self._call(self._ready(), "list", account_id, params=params)
        return decode_connections(call, self._request(call))

    def delete_connection(self, connection_id: str, account_id: str | None = None) -> None:
        """Delete a connection. Returns once it is gone: deleted now, or already gone when a retry
        (after an attempt whose answer was lost) answers 404. A 404 on the first attempt raises: the id
        is unknown to CData and nothing was deleted (CData's older pages say it answers 200 then)."""
        connection_id = validate_uuid(connection_id, "connection_id")
        call = self._call(self._ready(), "delete", account_id, connection_id=connection_id)
        log_already_gone(call, self._request(call))

    def clear_metadata(self, connection_id: str, account_id: str | None = None) -> None:
        """Clear the metadata cache of a connection."""
        connection_id = validate_uuid(connection_id, "connection_id")
        self._request(self._call(self._ready(), "clear_metadata", account_id, connection_id=connection_id))

    def test_connection(self) -> tuple[bool, str]:
        """One authenticated List Connections call, without retries; never raises."""
        settings: ConnectionSettings | None = None
        try:
            settings = self._ready()
            call = self._call(settings, "list", None)
            count = len(decode_connections(call, self._request(call, max_retries=0, remint=False)))
        except CDataAPIError as exc:
            return False, _diagnose(exc, settings)
        except CDataError as exc:
            return False, str(exc)
        except Exception as exc:  # the UI's "Test" button must get an answer, whatever happened
            return False, f"Unexpected {type(exc).__name__} while testing the CData connection"
        return (
            True,
            f"Connected to {settings.api_url}: {count} connections visible to account {call.account_id}",
        )

    def close(self) -> None:
        """Close the HTTP session (its keep-alive connections)."""
        if self._transport is not None:
            self._transport.close()

    # -- public async API (the trigger's) ----------------------------------------------------------
    async def acreate_connection(
        self,
        data_source: str | None = None,
        redirect_url: str | None = None,
        name: str | None = None,
        external_id: str | None = None,
        account_id: str | None = None,
        editable_name: bool | None = None,
    ) -> str:
        body = create_body(data_source, redirect_url, name, external_id, editable_name)
        settings = await self._aready()
        call = self._call(settings, "create", account_id, json=body)
        return await amask_connect_url(decode_connect_url(call, await self._arequest(call), settings.api_url))

    async def aedit_connection(
        self,
        connection_id: str,
        redirect_url: str,
        account_id: str | None = None,
        name: str | None = None,
        editable_name: bool | None = None,
    ) -> str:
        connection_id = validate_uuid(connection_id, "connection_id")
        body = edit_body(redirect_url, name, editable_name)
        settings = await self._aready()
        call = self._call(settings, "edit", account_id, connection_id=connection_id, json=body)
        return await amask_connect_url(decode_connect_url(call, await self._arequest(call), settings.api_url))

    async def alist_connections(
        self, account_id: str | None = None, data_source: str | None = None, external_id: str | None = None
    ) -> list[dict[str, Any]]:
        params = list_params(data_source, external_id)
        call = self._call(await self._aready(), "list", account_id, params=params)
        return decode_connections(call, await self._arequest(call))

    async def adelete_connection(self, connection_id: str, account_id: str | None = None) -> None:
        connection_id = validate_uuid(connection_id, "connection_id")
        call = self._call(await self._aready(), "delete", account_id, connection_id=connection_id)
        log_already_gone(call, await self._arequest(call))

    async def aclear_metadata(self, connection_id: str, account_id: str | None = None) -> None:
        connection_id = validate_uuid(connection_id, "connection_id")
        call = self._call(await self._aready(), "clear_metadata", account_id, connection_id=connection_id)
        await self._arequest(call)

    async def aclose(self) -> None:
        """Stop using the shared async client (the last hook on this loop closes it)."""
        if self._atransport is not None:
            await self._atransport.aclose()

    # -- introspection for tests and benchmarks ----------------------------------------------------
    @property
    def settings(self) -> ConnectionSettings:
        """The checked connection settings (reads the Airflow connection on first use)."""
        return self._ready()

    @property
    def tokens_minted(self) -> int:
        """Tokens this hook has minted (cached tokens reused are not counted)."""
        return self._minter.minted if self._minter is not None else 0

    # -- reading the connection and the key --------------------------------------------------------
    def _ready(self) -> ConnectionSettings:
        if self._settings is None:
            with self._init_lock:
                if self._settings is None:
                    # Airflow gives the password (the key) and the extra to its masker as they are read:
                    # under dag.test() not through the in-process supervisor's DEBUG log (see _masking).
                    with secrets_stay_in_process():
                        settings = settings_from_connection(self._get_airflow_connection())
                    key = load_key(settings)
                    mask_private_key(key.fingerprint, settings.private_key, settings.private_key_path)
                    self._install(settings, key)
        assert self._settings is not None
        return self._settings

    async def _aready(self) -> ConnectionSettings:
        if self._settings is None:
            async with self._first_read():
                if self._settings is None:
                    await self._aread_connection()
        assert self._settings is not None
        return self._settings

    def _first_read(self) -> asyncio.Lock:
        """One reader of the connection per hook and event loop: 48 calls started at once on a new hook
        read it (and loaded the key, ~50 ms of CPU each) 48 times, starving the first calls' exchanges."""
        loop = asyncio.get_running_loop()
        if self._aready_lock is None or self._aready_lock[0] is not loop:
            self._aready_lock = (loop, asyncio.Lock())
        return self._aready_lock[1]

    async def _aread_connection(self) -> None:
        # As in _ready. Airflow 3.1's aget_connection masks the password through the in-process
        # supervisor too, which under dag.test() logged the key at DEBUG. The swap holds a lock across
        # this await, safely: a second caller on this thread sees the swapped comms and takes no lock.
        with secrets_stay_in_process():
            connection = await self._aget_airflow_connection()
        settings = settings_from_connection(connection)
        # Loading a key costs ~50 ms of CPU (and a file read): off the event loop, unless cached.
        key = cached_key(settings.private_key) if settings.private_key else None
        if key is None:
            key = await asyncio.to_thread(load_key, settings)
        await amask_private_key(key.fingerprint, settings.private_key, settings.private_key_path)
        self._install(settings, key)
        self._aready_lock = None  # read: no later call takes it (and the hook holds no loop)

    def _get_airflow_connection(self) -> Any:
        try:
            return self.get_connection(self.cdata_conn_id)
        except AirflowNotFoundException:
            raise missing_connection(self.cdata_conn_id) from None

    async def _aget_airflow_connection(self) -> Any:
        try:
            return await self.aget_connection(self.cdata_conn_id)
        except AirflowNotFoundException:
            raise missing_connection(self.cdata_conn_id) from None

    def _install(self, settings: ConnectionSettings, key: LoadedKey) -> None:
        self._minter = TokenMinter(
            key,
            settings.parent_id,
            settings.token_lifetime,
            clock=lambda: self.clock(),
            scope=settings.api_url,
        )
        # Neither opens anything yet: the session, or the loop's shared client, comes with the first call.
        self._transport = SyncTransport(settings.api_url, settings.timeout, log)
        self._atransport = AsyncTransport(settings.api_url, settings.timeout, log)
        self._settings = settings

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
    ) -> Call:
        route = ROUTES[route_name]
        fill = {**(path_params or {}), **({"connection_id": connection_id} if connection_id else {})}
        path = route.path.format(**fill) if fill else route.path
        # A parent-level call (accounts, data sources) carries no sub and needs no child account.
        account = None if route.parent_level else self._account(settings, account_id)
        return Call(route=route, path=path, account_id=account, json=json, params=params)

    def _account(self, settings: ConnectionSettings, account_id: str | None) -> str:
        if account_id is not None:
            return validate_uuid(account_id, "account_id")
        account = self.account_id or settings.account_id
        if account is None:
            raise CDataValidationError(
                "account_id",
                "account_id is needed: pass account_id, or set the extra account_id of the Airflow "
                f"connection '{self.cdata_conn_id}'",
            )
        return account

    # -- one call: retries, and one new token after a 401 ------------------------------------------
    def _request(self, call: Call, max_retries: int | None = None, remint: bool = True) -> Answer:
        settings = self._ready()
        retries = settings.max_retries if max_retries is None else max_retries
        state = CallState()
        return self.retry_policy.run(lambda: self._attempt(call, state, remint), retries, log)

    def _attempt(self, call: Call, state: CallState, remint: bool) -> Answer:
        assert self._transport is not None
        answer = self._transport.send(call, self._token(call.account_id, renew=False), state)
        if answer.status == 401 and remint and not state.reminted:
            # The server rejected a token we thought valid (its clock, a re-registered key): one new
            # token, one more try.
            state.reminted = True
            answer = self._transport.send(call, self._token(call.account_id, renew=True), state)
        return settle(call, answer, state)

    def _token(self, account_id: str | None, renew: bool) -> str:
        assert self._minter is not None
        minted = self._minter.renew(account_id) if renew else self._minter.token(account_id)
        if minted.fresh:  # a task process mints a few: every one goes to the masker
            mask(minted.token)
        return minted.token

    async def _arequest(self, call: Call, max_retries: int | None = None, remint: bool = True) -> Answer:
        settings = await self._aready()
        retries = settings.max_retries if max_retries is None else max_retries
        state = CallState()
        return await self.retry_policy.arun(lambda: self._aattempt(call, state, remint), retries, log)

    async def _aattempt(self, call: Call, state: CallState, remint: bool) -> Answer:
        assert self._atransport is not None
        answer = await self._atransport.send(call, await self._atoken(call.account_id, renew=False), state)
        if answer.status == 401 and remint and not state.reminted:
            state.reminted = True
            answer = await self._atransport.send(call, await self._atoken(call.account_id, renew=True), state)
        return settle(call, answer, state)

    async def _atoken(self, account_id: str | None, renew: bool) -> str:
        assert self._minter is not None
        minted = self._minter.renew(account_id) if renew else self._minter.token(account_id)
        if minted.fresh and token_mask_budget.take():  # the triggerer's masker: see MaskBudget
            await amask(minted.token)
        return minted.token


def _diagnose(exc: CDataAPIError, settings: ConnectionSettings | None) -> str:
    where = settings.api_url if settings else "the CData API"
    if exc.status_code in (401, 403):
        parent = f" ({settings.parent_id})" if settings else ""
        return (
            f"{exc}. CData refused the token: check that the parent's public key is registered with "
            f"CData, that login is the parent account id{parent}, that account_id is a child account of "
            "that parent, and that this machine's clock is right (tokens carry iat and exp)."
        )
    if exc.status_code is None:
        return f"Could not reach {where}: {exc.message}. Check the host, the network or proxy, and TLS."
    return str(exc)
