"""Checks for every value that goes into a CData request, run before anything is sent.

Ids end up in URL paths, so they must be UUIDs: ``../`` or ``/`` can never reach a route. Each check
returns the value to send and raises :class:`~airflow_provider_cdata.exceptions.CDataValidationError`
naming the argument (``field``) and what is wrong with it.

It also holds the one set of rules for values that may arrive as text (connection extras of a
URI-form connection, operator arguments rendered by Jinja without native objects):
:func:`coerce_bool`, :func:`coerce_int`, and :func:`is_unset` for "not given".

Importing this module does not import Airflow (importing Airflow costs seconds): the exception class is
imported only when a check fails.
"""

from __future__ import annotations

import re
import unicodedata
from typing import NoReturn
from urllib.parse import urlsplit

MAX_NAME_LENGTH = 255
MAX_URL_LENGTH = 2048
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


def _fail(field: str, problem: str) -> NoReturn:
    from airflow_provider_cdata.exceptions import CDataValidationError

    raise CDataValidationError(field, f"{field} {problem}")


def _shown(value: object) -> str:
    """A short repr of a rejected value for the message (ids and names are not secrets)."""
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:57]}..."


def _has_control_characters(text: str) -> bool:
    return any(unicodedata.category(char) in ("Cc", "Cf", "Zl", "Zp") for char in text)


def validate_uuid(value: object, field: str) -> str:
    """A UUID in its canonical 8-4-4-4-12 form, returned lower-case."""
    if not isinstance(value, str):
        _fail(field, f"must be a UUID string, not {type(value).__name__}")
    if not _UUID.fullmatch(value):
        _fail(field, f"must be a UUID like 123e4567-e89b-12d3-a456-426614174000, got {_shown(value)}")
    return value.lower()


def validate_redirect_url(value: object, field: str = "redirect_url") -> str:
    """An absolute http(s) URL with a host, without spaces or control characters."""
    if not isinstance(value, str):
        _fail(field, f"must be an absolute http(s) URL string, not {type(value).__name__}")
    if not value:
        _fail(field, "must be an absolute http(s) URL, got an empty string")
    if len(value) > MAX_URL_LENGTH:
        _fail(field, f"must be at most {MAX_URL_LENGTH} characters long, got {len(value)}")
    if _has_control_characters(value) or any(char.isspace() for char in value):
        _fail(field, "must not contain spaces or control characters")
    try:
        parts = urlsplit(value)
        host = parts.hostname
    except ValueError:
        _fail(field, "is not a valid URL")
    if parts.scheme.lower() not in ("http", "https"):
        scheme = f"'{parts.scheme}:'" if parts.scheme else "no scheme"
        _fail(field, f"must be an absolute http:// or https:// URL, got {scheme}")
    if not host:
        _fail(field, "must be an absolute URL with a host, e.g. https://app.example.com/done")
    return value


def validate_name(value: object, field: str) -> str:
    """A non-blank string of at most 255 characters without control characters."""
    if not isinstance(value, str):
        _fail(field, f"must be a string, not {type(value).__name__}")
    if not value.strip():
        _fail(field, "must not be empty")
    if len(value) > MAX_NAME_LENGTH:
        _fail(field, f"must be at most {MAX_NAME_LENGTH} characters long, got {len(value)}")
    if _has_control_characters(value):
        _fail(field, f"must not contain control characters, got {_shown(value)}")
    return value


def validate_optional_name(value: object, field: str) -> str | None:
    """``None``, or a valid name (see :func:`validate_name`)."""
    return None if value is None else validate_name(value, field)


TRUE_WORDS = frozenset({"true", "yes", "on", "1"})
FALSE_WORDS = frozenset({"false", "no", "off", "0"})


def is_unset(value: object) -> bool:
    """``None``, or text that stands for it: empty or blank, or ``"None"`` (how Jinja renders None)."""
    return value is None or (isinstance(value, str) and value.strip() in ("", "None"))


def coerce_bool(value: object, field: str) -> bool:
    """A bool, the ints 1 and 0, or the text true/false, yes/no, on/off, 1/0 (any case, spaces around
    ignored)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        text = value.strip().lower()
        if text in TRUE_WORDS:
            return True
        if text in FALSE_WORDS:
            return False
    _fail(field, f"must be true or false, got {_shown(value)}")


def coerce_int(value: object, field: str, low: int = 0, high: int | None = None) -> int:
    """An int from ``low`` to ``high`` (both allowed; no ``high``: no upper bound): an int, a float
    without a fraction (JSON's ``5.0``), or decimal digits with an optional sign, spaces around ignored.
    Never a bool."""
    number: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, float) and value.is_integer():
        number = int(value)
    elif isinstance(value, str) and _is_decimal(value.strip()):
        number = int(value.strip())
    if number is None or number < low or (high is not None and number > high):
        kind = "a positive integer" if low > 0 else "a non-negative integer" if low == 0 else "an integer"
        bounds = f" between {low} and {high}" if high is not None else ""
        _fail(field, f"must be {kind}{bounds}, got {_shown(value)}")
    return number


def _is_decimal(text: str) -> bool:
    digits = text[1:] if text[:1] in ("+", "-") else text
    return digits.isascii() and digits.isdigit()  # isdigit() alone would take "²", which int() refuses


def coerce_optional_int(value: object, field: str, low: int = 0, high: int | None = None) -> int | None:
    """``None`` when :func:`is_unset`, else :func:`coerce_int`."""
    return None if is_unset(value) else coerce_int(value, field, low, high)
