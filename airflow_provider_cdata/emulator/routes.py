"""The names of the emulator's routes: what counters, the request log and fault rules call them."""

from __future__ import annotations

API_PREFIX = "/api/poweredby"
# The CData API's routes, the only ones faults apply to.
API_ROUTES = (
    "create",
    "edit",
    "list",
    "delete",
    "clear_metadata",
    "clear_metadata_openapi",
    "sources",
    "account_create",
    "account_list",
    "account_get",
    "account_update",
    "account_delete",
)
# The customer's connect page and the /_emulator admin routes: counted and logged, never faulted.
CONNECT_PAGE_ROUTES = ("connect_page", "connect_submit")
ADMIN_ROUTE = "admin"
# A request no route matched (a 404 or 405).
UNKNOWN_ROUTE = "unknown"
