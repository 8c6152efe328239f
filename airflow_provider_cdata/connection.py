"""The Airflow connection of type ``cdata``, read and checked: :class:`ConnectionSettings`.

* ``host``: the API root. A full URL (``https://cloud.cdata.com/api``) is used as it is. A host without
  a scheme (what a URI-form connection such as ``cdata://parent:key@cloud.cdata.com/api`` gives) is
  taken as ``https://``, with the port and the URI path (Airflow's ``schema``) appended. A URL without
  a path gets CData's ``/api``; write a trailing ``/`` for a root that really is ``/``. Empty: CData's
  public API. Plain ``http://`` is refused unless the host is loopback or ``allow_insecure_http`` is set.
  A host no HTTP client could call (spaces or control characters, a malformed name, ``user@``, a port
  outside 1-65535, a query or fragment) is a :class:`CDataConfigError` naming ``host``, before any call.
* ``login``: the parent (OEM) account id, the JWT ``iss``.
* ``password``: the parent's RSA private key (PEM); or the extra ``private_key_path``.
* extras: ``account_id`` (default child account, the JWT ``sub``), ``token_lifetime`` (seconds, default
  300), ``timeout`` (seconds, default 30), ``max_retries`` (default 5), ``allow_insecure_http``
  (default false); their bounds are defined once, in the package's ``__init__.py``. Extras may be strings
  (URI-form connections): they are coerced and checked.

Nothing here does I/O but :func:`load_key` (it may read a key file).
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from airflow_provider_cdata import (
    CONN_TYPE,
    DEFAULT_API_URL,
    DEFAULT_MAX_RETRIES,
    DEFAULT_TIMEOUT,
    DEFAULT_TOKEN_LIFETIME,
    MAX_RETRIES_RANGE,
    MAX_TIMEOUT,
    TOKEN_LIFETIME_RANGE,
)
from airflow_provider_cdata.auth import KeyLoadError, LoadedKey, load_private_key
from airflow_provider_cdata.exceptions import CDataConfigError, CDataValidationError
from airflow_provider_cdata.validation import coerce_bool, coerce_int, is_unset, validate_uuid


@dataclass(frozen=True)
class ConnectionSettings:
    """What the hook uses from the Airflow connection, checked and coerced."""

    api_url: str
    parent_id: str
    private_key: str | None = field(repr=False)
    private_key_path: str | None
    account_id: str | None
    token_lifetime: int = DEFAULT_TOKEN_LIFETIME
    timeout: float = DEFAULT_TIMEOUT
    max_retries: int = DEFAULT_MAX_RETRIES
    allow_insecure_http: bool = False


def settings_from_connection(conn: Any) -> ConnectionSettings:
    """Check an Airflow connection and turn it into :class:`ConnectionSettings` (no I/O)."""
    conn_id = getattr(conn, "conn_id", None) or "?"
    extra = _extra_dict(conn, conn_id)
    allow_insecure = _bool_extra(extra, "allow_insecure_http", False, conn_id)
    parent_id = conn.login
    if not isinstance(parent_id, str) or not parent_id.strip():
        raise connection_error(conn_id, "login", "login (the parent account id, the JWT iss) is empty")
    account_id = extra.get("account_id") or None
    if account_id is not None:
        try:
            account_id = validate_uuid(account_id, "account_id")
        except CDataValidationError as exc:
            raise connection_error(conn_id, "account_id", f"extra {exc}") from None
    key_path = extra.get("private_key_path") or None
    if key_path is not None and not isinstance(key_path, str):
        raise connection_error(
            conn_id, "private_key_path", "extra private_key_path must be a file path string"
        )
    return ConnectionSettings(
        api_url=_api_url(conn, allow_insecure, conn_id),
        parent_id=parent_id.strip(),
        private_key=conn.password or None,
        private_key_path=key_path,
        account_id=account_id,
        token_lifetime=_int_extra(
            extra, "token_lifetime", DEFAULT_TOKEN_LIFETIME, TOKEN_LIFETIME_RANGE, conn_id
        ),
        timeout=_timeout_extra(extra, conn_id),
        max_retries=_int_extra(extra, "max_retries", DEFAULT_MAX_RETRIES, MAX_RETRIES_RANGE, conn_id),
        allow_insecure_http=allow_insecure,
    )


def load_key(settings: ConnectionSettings) -> LoadedKey:
    """The connection's private key (from the password, or the file ``private_key_path`` names)."""
    try:
        return load_private_key(settings.private_key, settings.private_key_path)
    except KeyLoadError as exc:
        raise CDataConfigError(exc.field, f"CData private key: {exc}") from None


def missing_connection(conn_id: str) -> CDataConfigError:
    """The error for a connection Airflow says is not defined.

    Airflow 3.1 also says so of a connection its secrets backend could not read (it logs the reason at
    DEBUG only): an ``AIRFLOW_CONN_<ID>`` whose extra is not JSON reads as "not defined". When that
    variable is set, the error says what is wrong with it instead (Airflow 3.2+ returns such a connection,
    and its extra is refused by :func:`settings_from_connection`, naming the same field).
    """
    defined = os.environ.get(f"AIRFLOW_CONN_{conn_id.upper()}")
    if defined:
        return _unreadable_env_connection(conn_id, defined)
    return CDataConfigError(
        "cdata_conn_id",
        f"Airflow connection '{conn_id}' is not defined: create a connection of type '{CONN_TYPE}'",
    )


def _unreadable_env_connection(conn_id: str, value: str) -> CDataConfigError:
    variable = f"AIRFLOW_CONN_{conn_id.upper()}"
    if value.lstrip().startswith("{"):
        try:
            parsed = json.loads(value)
        except ValueError:
            return connection_error(conn_id, "cdata_conn_id", f"{variable} is not JSON")
        if isinstance(parsed, dict) and parsed.get("extra"):
            try:
                _extra_dict(SimpleNamespace(extra=parsed["extra"]), conn_id)
            except CDataConfigError as unreadable:  # what Airflow could not read: the extra
                return unreadable
    return connection_error(conn_id, "cdata_conn_id", f"Airflow could not read {variable} (its JSON or URI)")


def connection_error(conn_id: str, field: str, problem: str) -> CDataConfigError:
    """The error for a connection field (or extra) that is unusable: "Airflow connection '<id>': ..."."""
    return CDataConfigError(field, f"Airflow connection '{conn_id}': {problem}")


def _extra_dict(conn: Any, conn_id: str) -> dict[str, Any]:
    raw = conn.extra
    if not raw:
        return {}
    try:
        extra = json.loads(raw) if isinstance(raw, str) else dict(raw)
    except (ValueError, TypeError):
        raise connection_error(conn_id, "extra", "extra is not a JSON object") from None
    if not isinstance(extra, dict):
        raise connection_error(conn_id, "extra", "extra is not a JSON object")
    return extra


def _int_extra(extra: dict[str, Any], name: str, default: int, bounds: tuple[int, int], conn_id: str) -> int:
    raw = extra.get(name)
    if is_unset(raw):
        return default
    try:
        return coerce_int(raw, name, *bounds)
    except CDataValidationError as exc:
        raise connection_error(conn_id, name, f"extra {exc}") from None


def _timeout_extra(extra: dict[str, Any], conn_id: str) -> float:
    raw: Any = extra.get("timeout")
    if is_unset(raw):
        return DEFAULT_TIMEOUT
    try:
        value = float(raw) if not isinstance(raw, bool) else -1.0
    except (TypeError, ValueError):
        value = -1.0
    if not 0 < value <= MAX_TIMEOUT:
        raise connection_error(
            conn_id,
            "timeout",
            f"extra timeout must be a positive number of seconds (at most {MAX_TIMEOUT:g}), got {raw!r}",
        )
    return value


def _bool_extra(extra: dict[str, Any], name: str, default: bool, conn_id: str) -> bool:
    raw = extra.get(name)
    if is_unset(raw):
        return default
    try:
        return coerce_bool(raw, name)
    except CDataValidationError as exc:
        raise connection_error(conn_id, name, f"extra {exc}") from None


def _api_url(conn: Any, allow_insecure_http: bool, conn_id: str) -> str:
    host = (conn.host or "").strip()
    if not host:
        return DEFAULT_API_URL
    if problem := _unusable_text(host):
        raise connection_error(conn_id, "host", f"host {problem}")
    try:
        parts = urlsplit(host if "://" in host else f"https://{host}")
        hostname, port = parts.hostname, parts.port
    except ValueError as exc:
        problem = "host's port must be between 1 and 65535" if "port" in str(exc).lower() else ""
        raise connection_error(conn_id, "host", problem or "host is not a valid URL") from None
    if parts.scheme not in ("http", "https") or not hostname:
        raise connection_error(conn_id, "host", f"host must be an http(s) URL such as {DEFAULT_API_URL}")
    if "@" in parts.netloc or parts.query or parts.fragment or "?" in host or "#" in host:
        raise connection_error(
            conn_id, "host", "host must be a plain API URL, without credentials, query or fragment"
        )
    if problem := _host_name_problem(hostname):
        raise connection_error(conn_id, "host", f"host {problem}")
    if port == 0 or (conn.port and not 0 < _port_number(conn.port) <= 65535):
        raise connection_error(conn_id, "host", "host's port must be between 1 and 65535")
    if parts.scheme == "http" and not allow_insecure_http and not is_loopback(hostname):
        raise connection_error(
            conn_id,
            "host",
            f"host {hostname} uses plain http://, which would send the bearer token in clear; use "
            "https://, or set the extra allow_insecure_http to true",
        )
    netloc = parts.netloc
    if port is None and conn.port:
        netloc = f"{netloc}:{int(conn.port)}"
    path = parts.path or f"/{(conn.schema or 'api').strip('/')}"
    if problem := _unusable_text(path):
        raise connection_error(conn_id, "host", f"host's path {problem}")
    if "?" in path or "#" in path:
        raise connection_error(conn_id, "host", "host's path must not have a query or fragment")
    return _parsed_by_the_clients(urlunsplit((parts.scheme, netloc, path.rstrip("/"), "", "")), conn_id)


# -- the API URL's own checks: every call would otherwise fail with the HTTP client's raw InvalidURL --
_HOST_LABEL = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?")


def _unusable_text(text: str) -> str | None:
    """Why ``text`` (the host field, or the path it gives) cannot be part of the API URL, or None."""
    if any(char.isspace() or not char.isprintable() for char in text):
        # urlsplit() silently drops tabs and newlines, and a space reaches the client: refuse both.
        return "must not contain spaces or control characters"
    if "\\" in text:
        return "must not contain a backslash"
    return None


def _host_name_problem(hostname: str) -> str | None:
    """Why ``hostname`` (from urlsplit: lower-case, without brackets) is not a host, or None."""
    try:
        ipaddress.ip_address(hostname)
        return None
    except ValueError:
        pass
    try:
        ascii_name = hostname.encode("idna").decode("ascii")
    except UnicodeError:
        return f"name {hostname!r} is not a valid host name"
    labels = ascii_name.removesuffix(".").split(".")
    if len(ascii_name) > 253 or not all(_HOST_LABEL.fullmatch(label) for label in labels):
        return f"name {hostname[:60]!r} is not a valid host name"
    return None


def _port_number(port: Any) -> int:
    try:
        return int(port)
    except (TypeError, ValueError):
        return -1


def _parsed_by_the_clients(api_url: str, conn_id: str) -> str:
    """``api_url`` once requests and aiohttp's yarl (the two transports) both take it as a URL."""
    import requests
    import yarl

    try:
        requests.Request("GET", f"{api_url}/poweredby/connection/list").prepare()
        url = yarl.URL(f"{api_url}/poweredby/connection/list")
        if not url.is_absolute() or not url.host:
            raise ValueError(api_url)
    except (requests.RequestException, ValueError, UnicodeError, TypeError):
        raise connection_error(conn_id, "host", "host is not a URL the HTTP clients can use") from None
    return api_url


def is_loopback(hostname: str) -> bool:
    if hostname.lower().rstrip(".") == "localhost":
        return True
    try:
        return ipaddress.ip_address(hostname).is_loopback
    except ValueError:
        return False
