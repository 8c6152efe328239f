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


def get_provider_info() -> dict[str, Any]:
    """Describe the provider to Airflow's ProvidersManager (entry point ``apache_airflow_provider``).

    The connection form is declared here, the Airflow 3.2+ way (``conn-fields`` and
    ``ui-field-behaviour``), so the UI never has to import the hook to draw it.
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
                "description": "Seconds each minted JWT is valid; empty means 300.",
                # No schema default: Airflow hides the value of any field whose name contains "token", so
                # a default would reach the form as "***" and be saved as the lifetime.
                "schema": {"type": ["integer", "null"], "minimum": 30, "maximum": 3600},
            },
            "timeout": {
                "label": "Timeout (s)",
                "description": "Connect and read timeout of each request.",
                "schema": {"type": ["number", "null"], "default": 30, "minimum": 1},
            },
            "max_retries": {
                "label": "Max retries",
                "description": "Retries for connection errors, timeouts, 429 and 5xx answers.",
                "schema": {"type": ["integer", "null"], "default": 5, "minimum": 0, "maximum": 20},
            },
            "allow_insecure_http": {
                "label": "Allow plain http",
                "description": "Send the bearer token over http:// to a host that is not loopback.",
                "schema": {"type": ["boolean", "null"], "default": False},
            },
        },
    }
