"""The operators that ask for a connect link and list connections: Create, Edit, List."""

from __future__ import annotations

import difflib
import threading
import weakref
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow_provider_cdata.criteria import modified_between, parse_optional_time
from airflow_provider_cdata.exceptions import CDataValidationError
from airflow_provider_cdata.operators._common import _CDataOperator
from airflow_provider_cdata.validation import coerce_bool, is_unset, validate_optional_name, validate_uuid

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_provider_cdata.hooks import CDataHook

# What List Data Sources answered, per hook (CData's spelling by its case-folded form): asked once for
# the life of a hook, however many links it makes. Weak keys: a hook's entry goes with the hook.
_OFFERED: weakref.WeakKeyDictionary[CDataHook, dict[str, str]] = weakref.WeakKeyDictionary()
_OFFERED_LOCK = threading.Lock()


def offered_data_sources(hook: CDataHook) -> dict[str, str]:
    """The data sources CData offers, by case-folded name, from the hook's cache or one List call."""
    with _OFFERED_LOCK:
        cached = _OFFERED.get(hook)
    if cached is not None:
        return cached
    offered = {name.casefold(): name for name in hook.list_data_sources()}
    with _OFFERED_LOCK:
        return _OFFERED.setdefault(hook, offered)


def known_data_source(hook: CDataHook, data_source: str) -> str:
    """CData's own spelling of ``data_source`` (matched case-insensitively), or a CDataValidationError
    naming the closest names CData offers."""
    offered = offered_data_sources(hook)
    found = offered.get(data_source.strip().casefold())
    if found is not None:
        return found
    close = difflib.get_close_matches(data_source.strip().casefold(), list(offered), n=3, cutoff=0.6)
    hint = (
        f"the closest it offers: {', '.join(offered[name] for name in close)}"
        if close
        else f"it offers {len(offered)} (ListDataSourcesOperator lists them)"
    )
    raise CDataValidationError(
        "data_source",
        f"data_source {data_source[:60]!r} is not a data source CData offers ({hint}); no connect link "
        "was asked for",
    )


class CreateConnectionOperator(_CDataOperator):
    """Ask CData for a link where the customer creates a connection; returns the connect URL.

    The URL carries a short-lived bearer token (180 s at CData): hand it to the customer at once.
    Its token is masked in Airflow's logs; the XCom value holds the whole URL for your app to read.

    :param data_source: the data source (driver) name, e.g. ``Salesforce``; ``None`` (or a template
        rendering to nothing): the customer picks one on CData's page.
    :param redirect_url: where CData sends the customer's browser afterwards (absolute http(s) URL).
    :param connection_name: the connection's name, prefilled on the page.
    :param external_id: your own id for the connection, unique per child account; a
        ``ConnectionSensor(external_id=...)`` can wait for it.
    :param editable_name: ``False``: the customer cannot change ``connection_name`` on the page (CData
        enforces it on save). Default: CData's (editable). Templated: ``"False"`` is accepted.
    :param account_id: the child account (JWT ``sub``); default: the Airflow connection's.
    :param check_data_source: first check a given ``data_source`` against List Data Sources (case-insensitive;
        CData's own spelling is sent). An unknown name fails naming the closest ones CData offers, and
        no link is minted. The list is asked for once per hook. Templated; default true.
    """

    template_fields: Sequence[str] = (
        "data_source",
        "redirect_url",
        "connection_name",
        "external_id",
        "editable_name",
        "account_id",
        "check_data_source",
    )

    def __init__(
        self,
        *,
        redirect_url: str,
        data_source: str | None = None,
        connection_name: str | None = None,
        external_id: str | None = None,
        editable_name: bool | str | None = None,
        check_data_source: bool | str = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.data_source = data_source
        self.redirect_url = redirect_url
        self.connection_name = connection_name
        self.external_id = external_id
        self.editable_name = editable_name
        self.check_data_source = check_data_source

    def execute(self, context: Context) -> str:
        from airflow_provider_cdata.transport.payloads import create_body

        # Checked here too, so that an error names this operator's argument, not the hook's `name`.
        name = validate_optional_name(self.connection_name, "connection_name")
        # A template that renders to nothing ("None", "") leaves the pick to the customer.
        data_source = None if is_unset(self.data_source) else self.data_source
        editable_name = optional_bool(self.editable_name, "editable_name")
        # Every argument is checked before any request, List Data Sources included.
        create_body(data_source, self.redirect_url, name, self.external_id, editable_name)
        if not is_unset(self.account_id):
            validate_uuid(self.account_id, "account_id")
        if data_source is not None and coerce_bool(self.check_data_source, "check_data_source"):
            data_source = known_data_source(self.hook, data_source)
        url = self.hook.create_connection(
            data_source=data_source,
            redirect_url=self.redirect_url,
            name=name,
            external_id=self.external_id,
            account_id=self.account_id,
            editable_name=editable_name,
        )
        what = f"a new {data_source} connection" if data_source else "a new connection (the customer picks)"
        self.log.info("Connect link for %s: %s", what, url)
        return url


def optional_bool(value: object, field: str) -> bool | None:
    """``None`` (or a template rendering to nothing) stays unset; anything else must spell a bool."""
    return None if is_unset(value) else coerce_bool(value, field)


class EditConnectionOperator(_CDataOperator):
    """Ask CData for a link where the customer edits a connection; returns the connect URL.

    :param connection_id: the connection to edit.
    :param redirect_url: where CData sends the customer's browser afterwards (absolute http(s) URL).
    :param connection_name: the name to suggest on the page (with ``editable_name=False``, to enforce).
    :param editable_name: ``False``: the customer cannot change the name. Default: CData's (editable).
    """

    template_fields: Sequence[str] = (
        "connection_id",
        "redirect_url",
        "connection_name",
        "editable_name",
        "account_id",
    )

    def __init__(
        self,
        *,
        connection_id: str,
        redirect_url: str,
        connection_name: str | None = None,
        editable_name: bool | str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.connection_id = connection_id
        self.redirect_url = redirect_url
        self.connection_name = connection_name
        self.editable_name = editable_name

    def execute(self, context: Context) -> str:
        from airflow_provider_cdata.transport.payloads import edit_body

        # Checked here, so that an error names this operator's arguments, before anything is sent.
        name = validate_optional_name(self.connection_name, "connection_name")
        editable_name = optional_bool(self.editable_name, "editable_name")
        edit_body(self.redirect_url, name, editable_name)
        url = self.hook.edit_connection(
            connection_id=self.connection_id,
            redirect_url=self.redirect_url,
            account_id=self.account_id,
            name=name,
            editable_name=editable_name,
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
