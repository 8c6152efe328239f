"""The parent's private key and the JWTs signed with it. No Airflow imports: the hook adds that side.

Two costs shape this module (measured on the 2-core dev box with a 2048-bit key):

* ``load_pem_private_key`` takes ~50 ms, because cryptography checks the key. Loaded keys are cached
  process-wide by a hash of the PEM, so 500 hooks in one triggerer load a key once, not 500 times.
* ``jwt.encode`` given a PEM *string* parses it again on every call (~50 ms a token). Tokens are always
  signed with the loaded key object (~1 ms).

Tokens are cached process-wide too, per (scope, parent, child, key, lifetime) where the scope is the
API URL, and reused until shortly before they expire; each :class:`TokenMinter` counts what it minted.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import jwt
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key

Clock = Callable[[], float]
TOKEN_TYPE = "powered-by"  # noqa: S105 - the claim value CData expects, not a secret
ALGORITHM = "RS256"
MAX_CACHED_KEYS = 64
MAX_CACHED_TOKENS = 4096
# A token is replaced this long before it expires, so it never expires in flight or on a slightly
# fast server clock: min(60 s, a fifth of its lifetime).
MAX_RENEW_MARGIN = 60.0


class KeyLoadError(ValueError):
    """The private key cannot be used. ``field`` is ``"password"`` or ``"private_key_path"``.

    The message says what is wrong and never contains key material.
    """

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class LoadedKey(NamedTuple):
    key: RSAPrivateKey
    fingerprint: str  # sha256 of the PEM: identifies the key in caches without holding its text


_keys: dict[str, RSAPrivateKey] = {}
_keys_lock = threading.Lock()


def _normalise_pem(pem: str) -> str:
    """Accept a PEM pasted with literal ``\\n`` escapes (common in env vars and JSON) as well."""
    text = pem.strip()
    if "\\n" in text and "\n" not in text:
        text = text.replace("\\n", "\n")
    return text + "\n"


def fingerprint(pem: str) -> str:
    return hashlib.sha256(_normalise_pem(pem).encode()).hexdigest()


def cached_key(pem: str) -> LoadedKey | None:
    """The loaded key if this PEM was loaded before in this process (cheap: one hash, no parsing)."""
    digest = fingerprint(pem)
    with _keys_lock:
        key = _keys.get(digest)
    return LoadedKey(key, digest) if key is not None else None


def load_private_key(pem: str | None = None, path: str | None = None) -> LoadedKey:
    """Load the parent's RSA private key from PEM text, or else from a PEM file at ``path``.

    Raises :class:`KeyLoadError` for an empty, unreadable, encrypted, malformed or non-RSA key.
    """
    field = "password"
    if not pem or not pem.strip():
        if not path:
            raise KeyLoadError(
                "password",
                "no private key: put the parent's RSA private key (PEM) in the password field "
                "or set the extra private_key_path",
            )
        field = "private_key_path"
        pem = _read_key_file(path)
    return _load_pem(pem, field)


def _read_key_file(path: str) -> str:
    try:
        text = Path(path).expanduser().read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
        raise KeyLoadError(
            "private_key_path", f"private_key_path: cannot read the key file {path}: {reason}"
        ) from None
    if not text.strip():
        raise KeyLoadError("private_key_path", f"private_key_path: the key file {path} is empty")
    return text


def _load_pem(pem: str, field: str) -> LoadedKey:
    cached = cached_key(pem)
    if cached is not None:
        return cached
    text = _normalise_pem(pem)
    try:
        key = load_pem_private_key(text.encode(), password=None)
    except TypeError:
        raise KeyLoadError(field, f"{field}: the private key is encrypted; provide it unencrypted") from None
    except (ValueError, UnsupportedAlgorithm):
        # cryptography's own message is not shown: it may quote the input.
        raise KeyLoadError(
            field, f"{field}: not a PEM private key (expected '-----BEGIN PRIVATE KEY-----' or RSA PEM)"
        ) from None
    if not isinstance(key, RSAPrivateKey):
        kind = type(key).__name__.lstrip("_").replace("PrivateKey", "") or "non-RSA"
        raise KeyLoadError(field, f"{field}: CData signs with RS256 and needs an RSA key, not {kind}")
    digest = fingerprint(pem)
    with _keys_lock:
        if len(_keys) >= MAX_CACHED_KEYS:
            _keys.pop(next(iter(_keys)))
        _keys[digest] = key
    return LoadedKey(key, digest)


@dataclass
class _CachedToken:
    token: str
    issued_at: float
    expires_at: float


_tokens: dict[tuple[str, str, str, str, int], _CachedToken] = {}
_tokens_lock = threading.Lock()
_minted_total = 0


def _drop_expired(now: float) -> None:
    """Keep the cache bounded when a process talks to many child accounts (caller holds the lock)."""
    for cache_key in [k for k, cached in _tokens.items() if cached.expires_at <= now]:
        del _tokens[cache_key]
    while len(_tokens) >= MAX_CACHED_TOKENS:
        _tokens.pop(next(iter(_tokens)))


def tokens_minted_total() -> int:
    """Tokens minted in this process so far (for benchmarks)."""
    return _minted_total


def clear_token_cache() -> None:
    with _tokens_lock:
        _tokens.clear()


class MintedToken(NamedTuple):
    token: str
    fresh: bool  # minted by this call (the caller must register it with the secrets masker)


class TokenMinter:
    """Mints RS256 tokens for one parent and hands out cached ones while they are fresh enough.

    ``clock`` returns epoch seconds; tests move it instead of sleeping. ``minted`` counts the tokens this
    minter signed (a token found in the process-wide cache is not counted again).
    """

    def __init__(
        self,
        key: LoadedKey,
        parent_id: str,
        lifetime: int = 300,
        clock: Clock = time.time,
        scope: str = "",
    ) -> None:
        self.key = key
        self.parent_id = parent_id
        self.lifetime = lifetime
        self.clock = clock
        self.scope = scope
        self.minted = 0
        self.renew_margin = min(MAX_RENEW_MARGIN, lifetime / 5)

    def _cache_key(self, account_id: str | None) -> tuple[str, str, str, str, int]:
        # "" is the parent's own token (no sub): a child account id is a UUID, never empty.
        return (self.scope, self.parent_id, account_id or "", self.key.fingerprint, self.lifetime)

    def token(self, account_id: str | None) -> MintedToken:
        """A token for ``account_id`` (the JWT ``sub``), or with ``None`` the parent-level token without
        a ``sub`` (account calls): the cached one, or a new one near its expiry."""
        now = self.clock()
        with _tokens_lock:
            cached = _tokens.get(self._cache_key(account_id))
        if cached is not None and now < cached.expires_at - self.renew_margin:
            return MintedToken(cached.token, fresh=False)
        return MintedToken(self._mint(account_id, now), fresh=True)

    def renew(self, account_id: str | None) -> MintedToken:
        """A new token, whatever the cache holds: the server rejected the cached one (a 401)."""
        return MintedToken(self._mint(account_id, self.clock()), fresh=True)

    def _mint(self, account_id: str | None, now: float) -> str:
        global _minted_total
        issued_at = int(now)
        expires_at = issued_at + self.lifetime
        claims: dict[str, str | int] = {
            "tokenType": TOKEN_TYPE,
            "iat": issued_at,
            "exp": expires_at,
            "iss": self.parent_id,
        }
        if account_id is not None:  # left out for parent-level calls, as CData allows for account calls
            claims["sub"] = account_id
        token = jwt.encode(claims, self.key.key, algorithm=ALGORITHM, headers={"typ": "JWT"})
        with _tokens_lock:
            if len(_tokens) >= MAX_CACHED_TOKENS:
                _drop_expired(now)
            _tokens[self._cache_key(account_id)] = _CachedToken(token, issued_at, expires_at)
            self.minted += 1
            _minted_total += 1
        return token
