"""Pydantic models of the request and answer schemas of every call the provider makes.

Written from CData's OpenAPI 3.1 description of the Embedded API ("CData Connect AI REST API
Embedded", ``REST-API-Embedded.yaml``; a public copy: api-evangelist/cdata,
``openapi/_original/cdata-rest-api-embedded-openapi_2.yml``). Each class names the schema it follows
(``components/schemas/<Name>``). Every schema there says ``additionalProperties: false``, hence
``extra="forbid"``; types are strict, so ``"false"`` is not a boolean and ``1`` is not a string.

Where a model is looser or stricter than the description, the comment says why; README.md
("Known differences") lists the same.
"""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StrictBool, StrictStr


class Schema(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


# A date-time (``format: date-time``): CData's are UTC with a ``Z`` and 0-3 fraction digits. Strict mode
# takes them from JSON text; a naive time (no zone) is refused.
DateTime = Annotated[AwareDatetime, Field(strict=False)]
# ``format: uuid``: strict mode takes a UUID from JSON text only in lax mode for this one field.
Uuid = Annotated[UUID, Field(strict=False)]


# -- requests ---------------------------------------------------------------------------------------------
class CreateConnectionRequest(Schema):
    """``components/schemas/CreateConnectionRequest`` (POST /poweredby/connection/create): only
    ``redirectURL`` is required; ``dataSource``, ``name`` and ``externalId`` are nullable strings,
    ``editableName`` a boolean (default true)."""

    redirectURL: StrictStr
    dataSource: StrictStr | None = None
    name: StrictStr | None = None
    externalId: StrictStr | None = None
    editableName: StrictBool = True


class EditConnectionRequest(Schema):
    """``components/schemas/EditConnectionRequest`` (POST /poweredby/connection/edit/{connectionId})."""

    redirectURL: StrictStr
    name: StrictStr | None = None
    editableName: StrictBool = True


class ListConnectionsQuery(Schema):
    """The query parameters of GET /poweredby/connection/list (``listConnections``): ``driver`` (the
    data source, case-insensitive) and ``externalId`` (case-sensitive), both optional strings."""

    driver: StrictStr | None = None
    externalId: StrictStr | None = None


class CreateAccountRequest(Schema):
    """``components/schemas/CreateAccountRequest`` (POST /poweredby/account/create): all optional,
    ``{}`` accepted."""

    externalId: StrictStr | None = None
    accountName: StrictStr | None = None


class UpdateAccountRequest(Schema):
    """``components/schemas/UpdateAccountRequest`` (PUT /poweredby/account/update/{subAccountId})."""

    externalId: StrictStr | None = None
    accountName: StrictStr | None = None


# -- answers ----------------------------------------------------------------------------------------------
class RedirectURLResponse(Schema):
    """``components/schemas/RedirectURLResponse``: the answer of Create and Edit Connection."""

    redirectURL: StrictStr


class ConnectionListItem(Schema):
    """``components/schemas/ConnectionListItem``: ``id``, ``name``, ``dataSource``, ``lastModified``,
    ``mcpUrl`` and ``status`` required; ``externalId`` a nullable string. ``status`` is a string whose
    "possible values include Authenticated, NotAuthenticated, and Conditional": an open set, so any
    string validates (the provider keeps values it does not know)."""

    id: Uuid
    name: StrictStr
    dataSource: StrictStr
    lastModified: DateTime
    externalId: StrictStr | None = None
    mcpUrl: StrictStr
    status: StrictStr


class ConnectionListResult(Schema):
    """``components/schemas/ConnectionListResult``. The description does not mark ``connections``
    required; the model does: an answer without it is of no use to the provider (which refuses it)."""

    connections: list[ConnectionListItem]


class DataSourceListItem(Schema):
    """``components/schemas/DataSourceListItem``."""

    dataSource: StrictStr


class DataSourceListResult(Schema):
    """``components/schemas/DataSourceListResult`` (GET /poweredby/sources/list); ``dataSources``
    required here for the same reason as ``connections``."""

    dataSources: list[DataSourceListItem]


class AccountInfo(Schema):
    """``components/schemas/AccountInfo`` (Get Account, Update Account, each item of List Accounts):
    ``id``, ``externalId``, ``created`` required; ``accountName`` nullable.

    Looser than the description in one place: ``externalId`` may be null. The description types it a
    (non-nullable) string, yet Create Account takes ``{}``, and an account made so has no external id
    to show; the emulator answers null for it, and the provider accepts either."""

    id: StrictStr
    externalId: StrictStr | None
    accountName: StrictStr | None = None
    created: DateTime


class AccountListResult(Schema):
    """``components/schemas/AccountListResult``: ``accounts`` is nullable in the description."""

    accounts: list[AccountInfo] | None


class CreateAccountResult(Schema):
    """``components/schemas/CreateAccountResult``: ``accountId``, ``externalId``, ``createdTime``
    required (``externalId`` null allowed, as in :class:`AccountInfo`)."""

    accountId: StrictStr
    externalId: StrictStr | None
    createdTime: DateTime


# Each emulator route (its name in the request log) -> (request body schema, query schema, answer
# schema). None: the description gives the call no body (request), no parameters (query), or an
# answer without content ("200 OK": the answer must be empty).
ROUTE_SCHEMAS: dict[str, tuple[type[Schema] | None, type[Schema] | None, type[Schema] | None]] = {
    "create": (CreateConnectionRequest, None, RedirectURLResponse),
    "edit": (EditConnectionRequest, None, RedirectURLResponse),
    "list": (None, ListConnectionsQuery, ConnectionListResult),
    "delete": (None, None, None),
    "clear_metadata": (None, None, None),  # the seed's route
    "clear_metadata_openapi": (None, None, None),  # DELETE /poweredby/{connectionId}/metadata
    "sources": (None, None, DataSourceListResult),
    "account_create": (CreateAccountRequest, None, CreateAccountResult),
    "account_list": (None, None, AccountListResult),
    "account_get": (None, None, AccountInfo),
    "account_update": (UpdateAccountRequest, None, AccountInfo),
    "account_delete": (None, None, None),
}
