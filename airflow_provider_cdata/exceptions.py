"""The errors the provider raises. All of them are :class:`CDataError`, an ``AirflowException``.

None of them ever carries a bearer token, a connect-URL token or private-key material: messages name
the field or the route that failed and say what is wrong, nothing more.
"""

from __future__ import annotations

from typing import Any

from airflow_provider_cdata._compat import AirflowException


class CDataError(AirflowException):
    """Base class of every error this provider raises."""


class CDataValidationError(CDataError, ValueError):
    """An argument is unusable (not a UUID, not an absolute URL, an empty name...); nothing was sent.

    ``field`` is the argument's name, e.g. ``"connection_id"``.
    """

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.field, self.message))


class CDataConfigError(CDataError):
    """The Airflow connection is unusable: a missing or unreadable key, plain http to a remote host,
    a bad extra value. ``field`` names the connection field (``"password"``, ``"host"``, an extra).
    """

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field
        self.message = message

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.message, self.field))


class CDataAPIError(CDataError):
    """A call to the CData API failed.

    ``status_code`` is the last HTTP status (``None`` when no answer came: connection error, timeout,
    TLS failure), ``method`` and ``route`` say what was called (``route`` relative to the API root),
    ``message`` is CData's own message (or a short snippet of a non-JSON body), ``attempts`` is how
    many HTTP requests the call made, retries and the re-sent request after a 401 included.
    """

    # AirflowException.status_code is the HTTP status Airflow's own API would answer with; here it is
    # the status CData answered (None: no answer), as callers of this provider expect.
    status_code: int | None  # type: ignore[assignment]

    def __init__(
        self,
        method: str,
        route: str,
        status_code: int | None,
        message: str,
        attempts: int = 1,
    ) -> None:
        self.method = method
        self.route = route
        self.status_code = status_code
        self.message = message
        self.attempts = attempts
        # Worth another try: no answer at all, or a status that says "later" (429, 500, 502-504).
        # The hook clears it for failures that would only repeat (a TLS certificate error).
        self.retryable = status_code is None or status_code in RETRYABLE_STATUSES
        # Seconds the server asked us to wait (Retry-After); read by the retry policy only.
        self.retry_after: float | None = None
        super().__init__(self._describe())

    def _describe(self) -> str:
        outcome = f"failed with HTTP {self.status_code}" if self.status_code is not None else "failed"
        tries = f" after {self.attempts} attempts" if self.attempts > 1 else ""
        detail = f": {self.message}" if self.message else ""
        return f"CData API {self.method} {self.route} {outcome}{tries}{detail}"

    def __reduce__(self) -> tuple[Any, ...]:
        return (
            type(self),
            (self.method, self.route, self.status_code, self.message, self.attempts),
        )


RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})
