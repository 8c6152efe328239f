"""What the provider gives Airflow's secrets masker: the private key's lines, connect-URL tokens, and
minted tokens (budgeted), all through :func:`mask` / :func:`amask`.

The private key, bearer tokens and connect-URL tokens must never reach a log. The key's lines go to the
masker when a hook loads the key; tokens the hook mints go there as they are minted (see
:class:`MaskBudget` for the async path's limit); the token inside a connect URL goes there when a task
receives the URL, or when :func:`mask_connect_url` is called in another process.

Under dag.test() and `airflow tasks test` the supervisor runs in the task's process and logs at DEBUG
every message sent to it whole, a secret sent to its masker included: there :func:`mask` and
:func:`amask` mask in the process only, which is the supervisor's process too
(:func:`airflow_provider_cdata._compat.secrets_stay_in_process`), and the hook reads its Airflow
connection the same way, since Airflow sends the connection's password (the key) to the masker then.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from airflow_provider_cdata._compat import (
    amask_secret,
    in_process_supervisor,
    mask_secret,
    secrets_stay_in_process,
)

MAX_MASKED_TOKENS = 32  # minted tokens the async path registers with the masker per process (MaskBudget)


def mask(secret: str) -> None:
    """Register ``secret`` with Airflow's secrets masker: every secret the provider masks goes here."""
    with secrets_stay_in_process():
        mask_secret(secret)


async def amask(secret: str) -> None:
    """:func:`mask` for the event loop (the triggerer): the supervisor is told without blocking it."""
    if in_process_supervisor():  # dag.test() runs triggers in-line: nothing is sent, nothing blocks
        mask(secret)
    else:
        await amask_secret(secret)


def private_key_lines(pem: str | None = None, path: str | None = None) -> list[str]:
    """The lines of the parent's PEM that carry key material: of ``pem`` (the connection's password,
    literal ``\\n`` escapes allowed), or else of the file at ``path``.

    Airflow gives the password to its masker whole, and the masker matches a secret whole: a log line
    that holds one line of the key (or a key from a file, which Airflow never sees) is not masked by it.
    """
    text = pem
    if not (text and text.strip()) and path:
        try:  # the hook has just loaded the key from this file
            text = Path(path).expanduser().read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            return []
    lines = (line.strip() for line in (text or "").replace("\\n", "\n").splitlines())
    return [line for line in dict.fromkeys(lines) if line and not line.startswith("-----")]


def mask_private_key(fingerprint: str, pem: str | None = None, path: str | None = None) -> None:
    """Register each line of the parent's private key with the masker, once per process and key.

    Each line costs the masker a regex compile (~65 ms for a 2048-bit key, once per task process).
    """
    if token_mask_budget.first_sight(fingerprint):
        for line in private_key_lines(pem, path):
            mask(line)


async def amask_private_key(fingerprint: str, pem: str | None = None, path: str | None = None) -> None:
    """:func:`mask_private_key` for the event loop (a key file is read off it)."""
    if token_mask_budget.first_sight(fingerprint):
        for line in await asyncio.to_thread(private_key_lines, pem, path):
            await amask(line)


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
        mask(token)
    return url


async def amask_connect_url(url: str) -> str:
    """:func:`mask_connect_url` for the event loop: the masker is told without blocking it."""
    for token in connect_url_tokens(url):
        await amask(token)
    return url


class MaskBudget:
    """How many minted tokens the async calls (the triggerer's) register with Airflow's secrets masker,
    and which private keys (by fingerprint) this process has registered already.

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
        self._keys: set[str] = set()

    def take(self) -> bool:
        with self._lock:
            if self.used >= self.size:
                return False
            self.used += 1
            return True

    def first_sight(self, fingerprint: str) -> bool:
        """True the first time a private key is seen (since the last reset): its lines are then
        registered. A triggerer builds a hook per trigger; the key goes to the masker once."""
        with self._lock:
            if fingerprint in self._keys:
                return False
            self._keys.add(fingerprint)
            return True

    def reset(self) -> None:
        """Start counting again (with the masker's own reset, e.g. between tests)."""
        with self._lock:
            self.used = 0
            self._keys.clear()


token_mask_budget = MaskBudget(MAX_MASKED_TOKENS)
