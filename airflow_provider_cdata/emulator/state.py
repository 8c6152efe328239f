"""What the emulated CData service knows: parents, child accounts, connections, and its clock.

Every mutation goes through :class:`Store`, under one lock, so the HTTP side (uvicorn's event loop)
and a test thread can use it at once. With a state file every mutation is written atomically.
"""

from __future__ import annotations

import copy
import json
import os
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

DATA_SOURCES = (
    "ActOn",
    "Airtable",
    "AmazonS3",
    "BigQuery",
    "Dynamics365",
    "ExcelOnline",
    "GoogleSheets",
    "HubSpot",
    "Jira",
    "MailChimp",
    "MySQL",
    "NetSuite",
    "PostgreSQL",
    "QuickBooksOnline",
    "Salesforce",
    "ShopifyV2",
    "Snowflake",
    "SQLServer",
    "Stripe",
    "Zendesk",
)

CONNECTION_STATUSES = ("Authenticated", "NotAuthenticated", "Conditional")


class Clock:
    """Wall clock with an adjustable offset, so tests can move time instead of sleeping."""

    def __init__(self) -> None:
        self.offset = 0.0

    def now(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


def format_timestamp(epoch: float) -> str:
    """Render a time the way CData does: UTC, a ``Z``, and only the fraction digits that matter.

    CData sends ``2024-08-02T21:30:55.154Z`` and ``2023-10-11T20:43:33.28Z`` alike, so clients must
    not assume a fixed number of digits; the emulator reproduces that.
    """
    moment = datetime.fromtimestamp(epoch, tz=timezone.utc)
    millis = moment.microsecond // 1000
    base = moment.strftime("%Y-%m-%dT%H:%M:%S")
    fraction = f"{millis:03d}".rstrip("0")
    return f"{base}.{fraction}Z" if fraction else f"{base}Z"


def new_id() -> str:
    return str(uuid.uuid4())


class ConflictError(Exception):
    """An external id already used in that scope."""


class Store:
    """Parents (with their public keys), child accounts and connections, optionally persisted."""

    def __init__(self, clock: Clock | None = None, path: str | os.PathLike[str] | None = None) -> None:
        self.clock = clock or Clock()
        self._lock = threading.RLock()
        self._path = Path(path) if path else None
        self.parents: dict[str, dict[str, Any]] = {}
        self.accounts: dict[str, dict[str, Any]] = {}
        self.connections: dict[str, dict[str, Any]] = {}
        self.extras: dict[str, Any] = {}
        if self._path and self._path.exists():
            self._load(self._path)

    # -- persistence ---------------------------------------------------------------------------
    def _load(self, path: Path) -> None:
        data = json.loads(path.read_text(encoding="utf-8"))
        self.parents = data.get("parents", {})
        self.accounts = data.get("accounts", {})
        self.connections = data.get("connections", {})
        self.extras = data.get("extras", {})

    def _save(self) -> None:
        if not self._path:
            return
        data = {
            "parents": self.parents,
            "accounts": self.accounts,
            "connections": self.connections,
            "extras": self.extras,
        }
        self._path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self._path.parent, prefix=".emulator-state-")
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=1)
        os.replace(tmp, self._path)

    @contextmanager
    def _mutation(self) -> Iterator[None]:
        with self._lock:
            yield
            self._save()

    def set_extra(self, key: str, value: Any) -> None:
        with self._mutation():
            self.extras[key] = value

    # -- parents and accounts ------------------------------------------------------------------
    def register_parent(self, public_key_pem: str, parent_id: str | None = None) -> str:
        parent_id = parent_id or new_id()
        with self._mutation():
            self.parents[parent_id] = {"id": parent_id, "publicKey": public_key_pem}
        return parent_id

    def public_key(self, parent_id: str) -> str | None:
        with self._lock:
            parent = self.parents.get(parent_id)
            return parent["publicKey"] if parent else None

    def add_account(
        self,
        parent_id: str,
        account_id: str | None = None,
        external_id: str | None = None,
        account_name: str | None = None,
        seeded: bool = True,
    ) -> dict[str, Any]:
        """A new child account. ``seeded`` (the Python API, the demo): a missing external id becomes the
        account id and a missing name the external id, so seeded accounts are easy to find. Create Account
        over HTTP passes ``seeded=False``: what the client left out stays ``None``, as CData stores it."""
        with self._mutation():
            if parent_id not in self.parents:
                raise KeyError(f"unknown parent {parent_id}")
            new_account_id = account_id or new_id()
            if seeded:
                external_id = external_id or new_account_id
                account_name = account_name or external_id
            if external_id is not None:
                self._check_external_id(parent_id, external_id, except_id=None)
            account: dict[str, Any] = {
                "id": new_account_id,
                "parentId": parent_id,
                "externalId": external_id,
                "accountName": account_name,
                "created": format_timestamp(self.clock.now()),
            }
            self.accounts[account["id"]] = account
            return dict(account)

    def _check_external_id(self, parent_id: str, external_id: str, except_id: str | None) -> None:
        """External ids are unique per parent (the caller holds the lock)."""
        for account in self.accounts.values():
            if (
                account["parentId"] == parent_id
                and account["externalId"] == external_id
                and account["id"] != except_id
            ):
                raise ConflictError(f"An account with externalId '{external_id}' already exists")

    def update_account(
        self, parent_id: str, account_id: str, external_id: str | None, account_name: str | None
    ) -> dict[str, Any] | None:
        """Change the given fields of one of the parent's accounts (``None``: unchanged); ``None`` when the
        parent has no such account."""
        with self._mutation():
            account = self.accounts.get(account_id)
            if not account or account["parentId"] != parent_id:
                return None
            if external_id is not None:
                self._check_external_id(parent_id, external_id, except_id=account_id)
                account["externalId"] = external_id
            if account_name is not None:
                account["accountName"] = account_name
            return dict(account)

    def find_account(self, parent_id: str, id_or_external_id: str) -> dict[str, Any] | None:
        with self._lock:
            for account in self.accounts.values():
                if account["parentId"] == parent_id and id_or_external_id in (
                    account["id"],
                    account["externalId"],
                ):
                    return dict(account)
        return None

    def is_child(self, parent_id: str, account_id: str) -> bool:
        with self._lock:
            account = self.accounts.get(account_id)
            return bool(account and account["parentId"] == parent_id)

    def list_accounts(self, parent_id: str) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(a) for a in self.accounts.values() if a["parentId"] == parent_id]

    def delete_account(self, parent_id: str, account_id: str) -> bool:
        """Delete the account and, with it, every connection it still has (CData does not say what
        happens to them; a connection cannot outlive the account its token names). False: no such
        account of this parent."""
        with self._mutation():
            account = self.accounts.get(account_id)
            if not account or account["parentId"] != parent_id:
                return False
            del self.accounts[account_id]
            for conn_id in [c["id"] for c in self.connections.values() if c["accountId"] == account_id]:
                del self.connections[conn_id]
            return True

    # -- connections ---------------------------------------------------------------------------
    def external_id_taken(self, account_id: str, external_id: str, except_id: str | None = None) -> bool:
        with self._lock:
            return any(
                c["accountId"] == account_id and c.get("externalId") == external_id and c["id"] != except_id
                for c in self.connections.values()
            )

    def add_connection(
        self,
        account_id: str,
        data_source: str,
        name: str | None = None,
        external_id: str | None = None,
        status: str = "Authenticated",  # ConnectionListItem requires one: never None
        last_modified: float | None = None,
        settings: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """Create a connection, as the customer's Save & Test does (or a test's fixture)."""
        with self._mutation():
            if account_id not in self.accounts:
                raise KeyError(f"unknown account {account_id}")
            if external_id and self.external_id_taken(account_id, external_id):
                raise ConflictError(f"externalId {external_id!r} is already used in this account")
            connection_id = new_id()
            connection: dict[str, Any] = {
                "id": connection_id,
                "name": name or self._default_name(account_id, data_source),
                "dataSource": data_source,
                "lastModified": format_timestamp(
                    self.clock.now() if last_modified is None else last_modified
                ),
                "externalId": external_id,
                "status": status,
                "accountId": account_id,
                "settings": dict(settings or {}),
                "metadataClears": 0,
            }
            self.connections[connection_id] = connection
            return copy.deepcopy(connection)

    def _default_name(self, account_id: str, data_source: str) -> str:
        taken = {c["name"] for c in self.connections.values() if c["accountId"] == account_id}
        number = 1
        while f"{data_source}{number}" in taken:
            number += 1
        return f"{data_source}{number}"

    def default_name(self, account_id: str, data_source: str) -> str:
        with self._lock:
            return self._default_name(account_id, data_source)

    def update_connection(self, connection_id: str, **changes: Any) -> dict[str, Any]:
        with self._mutation():
            connection = self.connections[connection_id]
            connection.update({k: v for k, v in changes.items() if v is not None})
            connection["lastModified"] = format_timestamp(self.clock.now())
            return copy.deepcopy(connection)

    def set_status(self, connection_id: str, status: str) -> dict[str, Any]:
        """Set a connection's status (``Conditional``: a test that passed only in part), as CData's own
        checks do, without a customer saving anything: ``lastModified`` is kept."""
        with self._mutation():
            connection = self.connections[connection_id]
            connection["status"] = status
            return copy.deepcopy(connection)

    def get_connection(self, connection_id: str) -> dict[str, Any] | None:
        with self._lock:
            connection = self.connections.get(connection_id)
            return copy.deepcopy(connection) if connection else None

    def connection_in_account(self, account_id: str, connection_id: str) -> dict[str, Any] | None:
        connection = self.get_connection(connection_id)
        return connection if connection and connection["accountId"] == account_id else None

    def list_connections(
        self, account_id: str | None = None, where: Callable[[dict[str, Any]], bool] | None = None
    ) -> list[dict[str, Any]]:
        with self._lock:
            found = [
                copy.deepcopy(c)
                for c in self.connections.values()
                if (account_id is None or c["accountId"] == account_id) and (where is None or where(c))
            ]
        return found

    def delete_connection(self, account_id: str, connection_id: str) -> bool:
        with self._mutation():
            connection = self.connections.get(connection_id)
            if not connection or connection["accountId"] != account_id:
                return False
            del self.connections[connection_id]
            return True

    def clear_metadata(self, account_id: str, connection_id: str) -> bool:
        with self._mutation():
            connection = self.connections.get(connection_id)
            if not connection or connection["accountId"] != account_id:
                return False
            connection["metadataClears"] += 1
            return True
