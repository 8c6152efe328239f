"""The operators that ask for a connect link and list connections: Create, Edit, List."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow_provider_cdata.criteria import modified_between, parse_optional_time
from airflow_provider_cdata.operators._common import _CDataOperator
from airflow_provider_cdata.validation import validate_optional_name

if TYPE_CHECKING:
    from airflow.sdk import Context


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
