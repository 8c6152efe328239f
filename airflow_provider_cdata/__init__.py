"""Apache Airflow provider for the Powered by CData Connection Management API.

Importing this package is cheap on purpose: Airflow calls :func:`get_provider_info` in every process
that discovers providers, so nothing here imports Airflow, requests or cryptography.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.2.0"

DEFAULT_API_URL = "https://cloud.cdata.com/api"
DEFAULT_CONN_ID = "cdata_default"
CONN_TYPE = "cdata"

# -- the defaults and bounds of the connection's extras, defined once ---------------------------------
# The form below declares them and airflow_provider_cdata.connection checks them; tests/test_provider_info.py
# checks that the two agree at every bound. Here, not in a module of their own: every Airflow process
# imports this package (and DAG files through the operators), and a module costs ~0.4 ms to import.
DEFAULT_TOKEN_LIFETIME = 300
TOKEN_LIFETIME_RANGE = (30, 3600)  # seconds each minted JWT is valid; both ends allowed
DEFAULT_TIMEOUT = 30.0
MAX_TIMEOUT = 600.0  # seconds: a timeout is more than 0 and at most this
DEFAULT_MAX_RETRIES = 5
MAX_RETRIES_LIMIT = 20
MAX_RETRIES_RANGE = (0, MAX_RETRIES_LIMIT)  # both ends allowed

# Keep-alive connections one hook's requests session keeps per host (transport/sync.py), the async
# session's pool (transport/aio.py ASYNC_POOL_SIZE), and so the most calls the bulk operators have in
# flight at once (operators.MAX_CONCURRENCY): more would only wait for a connection. One number, here
# because DAG files import the operators.
SESSION_POOL_SIZE = 32


def get_provider_info() -> dict[str, Any]:
    """Describe the provider to Airflow's ProvidersManager (entry point ``apache_airflow_provider``).

    The connection form is declared here, the Airflow 3.2+ way (``conn-fields`` and
    ``ui-field-behaviour``), so the UI never has to import the hook to draw it. Its defaults and bounds
    are the hook's own (the constants above).
    """
    return {
        "package-name": "airflow-provider-cdata",
        "name": "CData (Powered by CData)",
        "description": "Manage Powered by CData connections (create, edit, list, delete, clear metadata) "
        "from Airflow DAGs.",
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": "Powered by CData",
                "external-doc-url": "https://cloud.cdata.com/docs/",
                "tags": ["service"],
            }
        ],
        "hooks": [
            {"integration-name": "Powered by CData", "python-modules": ["airflow_provider_cdata.hooks"]}
        ],
        "operators": [
            {"integration-name": "Powered by CData", "python-modules": ["airflow_provider_cdata.operators"]}
        ],
        "sensors": [
            {"integration-name": "Powered by CData", "python-modules": ["airflow_provider_cdata.sensors"]}
        ],
        "triggers": [
            {"integration-name": "Powered by CData", "python-modules": ["airflow_provider_cdata.triggers"]}
        ],
        "connection-types": [_cdata_connection_type()],
    }


def _cdata_connection_type() -> dict[str, Any]:
    return {
        "connection-type": CONN_TYPE,
        "hook-class-name": "airflow_provider_cdata.hooks.CDataHook",
        "hook-name": "Powered by CData",
        "ui-field-behaviour": {
            "hidden-fields": ["schema", "port"],
            "relabeling": {
                "host": "API URL",
                "login": "Parent account ID",
                "password": "Private key (PEM)",
            },
            "placeholders": {
                "host": DEFAULT_API_URL,
                "login": "the parent (OEM) account id: the JWT iss",
                "password": "-----BEGIN PRIVATE KEY----- ... (or set private_key_path)",
            },
        },
        "conn-fields": {
            "account_id": {
                "label": "Child account ID",
                "description": "Default child account (the JWT sub); operators and sensors can override it.",
                "schema": {"type": ["string", "null"]},
            },
            "private_key_path": {
                "label": "Private key file",
                "description": "Path to a PEM private key, instead of the key in the password field.",
                "schema": {"type": ["string", "null"]},
            },
            "token_lifetime": {
                "label": "Token lifetime (s)",
                "description": (f"Seconds each minted JWT is valid; empty means {DEFAULT_TOKEN_LIFETIME}."),
                # No schema default: Airflow hides the value of any field whose name contains "token", so
                # a default would reach the form as "***" and be saved as the lifetime.
                "schema": {"type": ["integer", "null"], **_int_bounds(TOKEN_LIFETIME_RANGE)},
            },
            "timeout": {
                "label": "Timeout (s)",
                "description": "Connect and read timeout of each request.",
                # More than 0 (the UI draws a number field from "minimum" and "maximum" only, so the
                # lower bound is checked by the hook, with a message naming the field).
                "schema": {
                    "type": ["number", "null"],
                    "default": DEFAULT_TIMEOUT,
                    "exclusiveMinimum": 0,
                    "maximum": MAX_TIMEOUT,
                },
            },
            "max_retries": {
                "label": "Max retries",
                "description": "Retries for connection errors, timeouts, 429 and 5xx answers.",
                "schema": {
                    "type": ["integer", "null"],
                    "default": DEFAULT_MAX_RETRIES,
                    **_int_bounds(MAX_RETRIES_RANGE),
                },
            },
            "allow_insecure_http": {
                "label": "Allow plain http",
                "description": "Send the bearer token over http:// to a host that is not loopback.",
                "schema": {"type": ["boolean", "null"], "default": False},
            },
        },
    }


def _int_bounds(bounds: tuple[int, int]) -> dict[str, int]:
    low, high = bounds
    return {"minimum": low, "maximum": high}
