"""The retry policy: one for the sync and the async calls alike.

Its loop is written out here rather than run by tenacity: tenacity's async retrying inspects its
callbacks with ``inspect`` on every attempt, ~20 % of the async hook's own CPU per call (benchmarks/,
figure 7), and both loops are a few lines."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from airflow_provider_cdata.exceptions import CDataAPIError

T = TypeVar("T")


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

    def run(self, attempt: Callable[[], T], max_retries: int, logger: logging.Logger) -> T:
        """``attempt()`` until it returns, raises an error that is not retryable, or has failed
        ``max_retries + 1`` times (then its last error is raised)."""
        number = 1
        while True:
            try:
                return attempt()
            except CDataAPIError as error:
                if not error.retryable or number > max_retries:
                    raise
                pause = self._before_sleep(error, number, max_retries, logger)
            time.sleep(pause)
            number += 1

    async def arun(self, attempt: Callable[[], Awaitable[T]], max_retries: int, logger: logging.Logger) -> T:
        """:meth:`run` for the event loop: the same attempts, waits and log lines."""
        number = 1
        while True:
            try:
                return await attempt()
            except CDataAPIError as error:
                if not error.retryable or number > max_retries:
                    raise
                pause = self._before_sleep(error, number, max_retries, logger)
            await asyncio.sleep(pause)
            number += 1

    def _before_sleep(
        self, error: CDataAPIError, number: int, max_retries: int, logger: logging.Logger
    ) -> float:
        """The wait before retry ``number``, logged (method, route and status: never a token)."""
        pause = self.wait_seconds(error, number)
        what = f"HTTP {error.status_code}" if error.status_code is not None else error.message
        logger.warning(
            "CData API %s %s: %s; retry %d of %d in %.2f s",
            error.method,
            error.route,
            what,
            number,
            max_retries,
            pause,
        )
        return pause
