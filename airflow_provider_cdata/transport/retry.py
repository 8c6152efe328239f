"""The retry policy: one for the sync and the async calls alike."""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from typing import Any

import tenacity

from airflow_provider_cdata.exceptions import CDataAPIError


def is_retryable(exc: BaseException) -> bool:
    return isinstance(exc, CDataAPIError) and exc.retryable


@dataclass(frozen=True)
class RetryPolicy:
    """The one retry policy, used by the sync and the async calls alike.

    Retried: no answer (connection errors, timeouts, cut-short bodies) and 429, 500, 502, 503, 504, up
    to ``max_retries`` times. ``Retry-After`` is honoured up to ``retry_after_cap`` seconds; otherwise
    the wait doubles from ``backoff_base`` up to ``backoff_max``, with jitter (50-100 % of the step).
    """

    backoff_base: float = 0.5
    backoff_max: float = 30.0
    retry_after_cap: float = 60.0

    def wait_seconds(self, error: BaseException | None, retry_number: int) -> float:
        retry_after = getattr(error, "retry_after", None)
        if retry_after is not None:
            return min(float(retry_after), self.retry_after_cap)
        step = min(self.backoff_max, self.backoff_base * 2.0 ** (retry_number - 1))
        return step * random.uniform(0.5, 1.0)

    def _options(self, max_retries: int, logger: logging.Logger) -> dict[str, Any]:
        def wait(state: tenacity.RetryCallState) -> float:
            error = state.outcome.exception() if state.outcome else None
            return self.wait_seconds(error, state.attempt_number)

        def before_sleep(state: tenacity.RetryCallState) -> None:
            error = state.outcome.exception() if state.outcome else None
            if isinstance(error, CDataAPIError):
                what = f"HTTP {error.status_code}" if error.status_code is not None else error.message
                logger.warning(
                    "CData API %s %s: %s; retry %d of %d in %.2f s",
                    error.method,
                    error.route,
                    what,
                    state.attempt_number,
                    max_retries,
                    state.upcoming_sleep,
                )

        return {
            "stop": tenacity.stop_after_attempt(max_retries + 1),
            "wait": wait,
            "retry": tenacity.retry_if_exception(is_retryable),
            "before_sleep": before_sleep,
            "reraise": True,
        }

    def retrying(self, max_retries: int, logger: logging.Logger) -> tenacity.Retrying:
        return tenacity.Retrying(**self._options(max_retries, logger))

    def async_retrying(self, max_retries: int, logger: logging.Logger) -> tenacity.AsyncRetrying:
        return tenacity.AsyncRetrying(**self._options(max_retries, logger))
