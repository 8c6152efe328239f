"""What the provider gives Airflow's secrets masker: connect-URL tokens, and minted tokens (budgeted).

Bearer tokens and connect-URL tokens must never reach a log. Tokens the hook mints go to the masker as
they are minted (see :class:`MaskBudget` for the async path's limit); the token inside a connect URL
goes there when a task receives the URL, or when :func:`mask_connect_url` is called in another process.
"""

from __future__ import annotations

import threading
from urllib.parse import parse_qs, urlsplit

from airflow_provider_cdata._compat import amask_secret, mask_secret

MAX_MASKED_TOKENS = 32  # minted tokens the async path registers with the masker per process (MaskBudget)


def connect_url_tokens(url: str) -> list[str]:
    """The bearer tokens inside a connect URL (its ``token`` query value), to be masked."""
    try:
        query = parse_qs(urlsplit(url).query)
    except ValueError:
        return []
    return [token for token in query.get("token", []) if token]


def mask_connect_url(url: str) -> str:
    """Register the token inside a connect URL with Airflow's secrets masker; return the URL unchanged.

    The hook does this in the task that receives the URL. A task that gets the URL from XCom runs in
    another process, whose masker has never seen the token: call this before logging or sending it.
    """
    for token in connect_url_tokens(url):
        mask_secret(token)
    return url


async def amask_connect_url(url: str) -> str:
    """:func:`mask_connect_url` for the event loop: the masker is told without blocking it."""
    for token in connect_url_tokens(url):
        await amask_secret(token)
    return url


class MaskBudget:
    """How many minted tokens the async calls (the triggerer's) register with Airflow's secrets masker.

    The masker compiles one regex of every secret it holds, again for each new one: ~1 ms with one
    secret, ~60 ms with 100, ~1.2 s with 500 (2-core box). A triggerer is one long-lived process that
    waits for many customers: with 150 child accounts (one token each, renewed every ~4 minutes) its
    event loop froze for 19 s (benchmarks/, figure 4), and the regex only grows. So the async path
    registers the first ``size`` minted tokens of a process; later ones are kept out of its logs by
    Airflow's own JWT redaction (its log processors replace every ``eyJ...`` run, since Airflow 3.0),
    which is how Airflow keeps its own rotating task tokens out of logs. The sync calls run in task
    processes, which live for one task: they register every minted token, and every connect-URL token
    is registered on both paths.
    """

    def __init__(self, size: int) -> None:
        self._lock = threading.Lock()
        self.size = size
        self.used = 0

    def take(self) -> bool:
        with self._lock:
            if self.used >= self.size:
                return False
            self.used += 1
            return True

    def reset(self) -> None:
        """Start counting again (with the masker's own reset, e.g. between tests)."""
        with self._lock:
            self.used = 0


token_mask_budget = MaskBudget(MAX_MASKED_TOKENS)
