"""The errors the provider raises. All of them are :class:`CDataError`, an ``AirflowException``.

None of them ever carries a bearer token, a connect-URL token or private-key material: messages name
the field or the route that failed and say what is wrong, nothing more.

Each error is whole when it is made: everything it says is a constructor argument, in the same order
for all three (what failed, then the message, then the details), and cannot be changed afterwards. A
pickled error (an error crossing processes) comes back with every attribute it left with.
"""

from __future__ import annotations

from typing import Any, ClassVar

from airflow_provider_cdata._compat import AirflowException

RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})


class CDataError(AirflowException):
    """Base class of every error this provider raises."""

    # The constructor's arguments, in order; each is kept as an attribute of that name, fixed once set.
    _arguments: ClassVar[tuple[str, ...]] = ()

    def __setattr__(self, name: str, value: Any) -> None:
        if name in self._arguments and name in self.__dict__:
            raise AttributeError(f"{type(self).__name__}.{name} is set when the error is made")
        super().__setattr__(name, value)

    def _constructor_args(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in self._arguments)

    def __reduce__(self) -> Any:
        if not self._arguments:  # a plain CDataError(message)
            return super().__reduce__()
        return (type(self), self._constructor_args())

    def serialize(self) -> tuple[str, tuple[Any, ...], dict[str, Any]]:
        """Airflow's own serialization of an exception (it rebuilds it as ``cls(*args, **kwargs)``)."""
        if not self._arguments:
            return super().serialize()  # type: ignore[no-any-return,no-untyped-call]
        cls = type(self)
        return f"{cls.__module__}.{cls.__name__}", self._constructor_args(), {}


class CDataValidationError(CDataError, ValueError):
    """An argument is unusable (not a UUID, not an absolute URL, an empty name...); nothing was sent.

    ``field`` is the argument's name, e.g. ``"connection_id"``.
    """

    _arguments = ("field", "message")

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


class CDataConfigError(CDataError):
    """The Airflow connection is unusable: a missing or unreadable key, plain http to a remote host,
    a bad extra value. ``field`` names the connection field (``"password"``, ``"host"``, an extra).
    """

    _arguments = ("field", "message")

    def __init__(self, field: str | None, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


class CDataAPIError(CDataError):
    """A call to the CData API failed.

    ``status_code`` is the last HTTP status (``None`` when no answer came: connection error, timeout,
    TLS failure), ``method`` and ``route`` say what was called (``route`` relative to the API root),
    ``message`` is CData's own message (or a short snippet of a non-JSON body), ``attempts`` is how
    many HTTP requests the call made, retries and the re-sent request after a 401 included.
    ``retry_after`` is the seconds the server asked to wait (``Retry-After``; read by the retry policy).
    ``retryable`` says whether another try could succeed: by default when no answer came or the status
    says "later" (429, 500, 502-504); the hook passes ``False`` for a failure that would only repeat
    (a TLS certificate that does not verify).
    """

    _arguments = ("method", "route", "status_code", "message", "attempts", "retry_after", "retryable")

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
        retry_after: float | None = None,
        retryable: bool | None = None,
    ) -> None:
        self.method = method
        self.route = route
        self.status_code = status_code
        self.message = message
        self.attempts = attempts
        self.retry_after = retry_after
        self.retryable = (
            (status_code is None or status_code in RETRYABLE_STATUSES) if retryable is None else retryable
        )
        super().__init__(self._describe())

    def _describe(self) -> str:
        outcome = f"failed with HTTP {self.status_code}" if self.status_code is not None else "failed"
        tries = f" after {self.attempts} attempts" if self.attempts > 1 else ""
        detail = f": {self.message}" if self.message else ""
        return f"CData API {self.method} {self.route} {outcome}{tries}{detail}"
