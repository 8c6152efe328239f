"""The emulator's side of JWTs: verifying API bearer tokens, and signing the connect page's flow tokens.

API tokens are checked the way CData documents: RS256 only, against the public key registered for
``iss``, ``tokenType`` ``powered-by``, ``exp`` in the future and ``iat`` (and ``nbf``, if sent) not in the
future beyond a small skew, ``sub`` a child account of that parent. ``exp``, ``iat`` and ``nbf`` must be
NumericDates (RFC 7519: a finite number of seconds), so ``Infinity``, ``NaN``, ``1e400`` and ``true`` are
refused.
"""

from __future__ import annotations

import binascii
import math
import secrets
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from jwt.utils import base64url_decode

from airflow_provider_cdata.emulator import payloads
from airflow_provider_cdata.emulator.state import Store

CLOCK_SKEW_SECONDS = 30
FLOW_ISSUER = "cdata.connect.accountservice"
FLOW_AUDIENCE = "cdata.connect.oem"


class AuthError(Exception):
    """A rejected API token: 401 (not authenticated) or 403 (authenticated, not authorised)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Caller:
    parent_id: str
    account_id: str | None
    claims: dict[str, Any]


def verify_api_token(
    store: Store, authorization: str | None, now: float, need_account: bool = True
) -> Caller:
    """Return who is calling, or raise :class:`AuthError` saying why not."""
    token = _bearer(authorization)
    header, unverified = _unverified_parts(token)
    if header.get("alg") != "RS256":
        raise AuthError(401, f"JWT must be signed with RS256, not {header.get('alg')!r}")
    parent_id = unverified.get("iss")
    if not isinstance(parent_id, str) or not parent_id:
        raise AuthError(401, "JWT has no iss claim (the parent account id)")
    public_key = store.public_key(parent_id)
    if public_key is None:
        raise AuthError(401, f"No public key is registered for parent account {parent_id}")
    claims = dict(_signed_claims(token, public_key))
    _check_times(claims, now)
    account_id = claims.get("sub")
    if account_id is None and need_account:
        raise AuthError(403, "JWT has no sub claim: connection calls need a child account id")
    if account_id is not None and not store.is_child(parent_id, str(account_id)):
        raise AuthError(403, f"Account {account_id} is not a child account of parent {parent_id}")
    return Caller(parent_id=parent_id, account_id=account_id, claims=claims)


def _bearer(authorization: str | None) -> str:
    if not authorization:
        raise AuthError(401, "Missing Authorization header")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthError(401, "Authorization header must be 'Bearer <JWT>'")
    return token.strip()


def _unverified_parts(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Header and claims before verification: only to pick the algorithm check and the key."""
    try:
        header_b64, payload_b64, _ = token.split(".")
        header, payload = (payloads.loads(base64url_decode(part)) for part in (header_b64, payload_b64))
    except (ValueError, binascii.Error) as exc:
        raise AuthError(401, f"Malformed JWT: {exc}") from None
    if not isinstance(header, dict) or not isinstance(payload, dict):
        raise AuthError(401, "Malformed JWT: header and payload must be JSON objects")
    return header, payload


@lru_cache(maxsize=256)
def _load_public_key(pem: str) -> PublicKeyTypes:
    """Parse a registered PEM once; parsing on every request would cost more than the verification."""
    return load_pem_public_key(pem.encode())


@lru_cache(maxsize=4096)
def _signed_claims(token: str, public_key_pem: str) -> dict[str, Any]:
    """Verify the RS256 signature; cached per (token, key) since clients reuse a token many times."""
    try:
        public_key = _load_public_key(public_key_pem)
    except ValueError:
        raise AuthError(401, "The registered public key cannot be loaded") from None
    try:
        # exp/iat are checked by _check_times against the emulator's own (movable) clock.
        claims: dict[str, Any] = jwt.decode(
            token,
            public_key,  # type: ignore[arg-type]
            algorithms=["RS256"],
            options={"verify_exp": False, "verify_iat": False, "verify_nbf": False, "verify_aud": False},
        )
    except jwt.InvalidSignatureError:
        raise AuthError(401, "JWT signature does not match the registered public key") from None
    except jwt.PyJWTError as exc:
        raise AuthError(401, f"Invalid JWT: {exc}") from None
    return claims


def _check_times(claims: dict[str, Any], now: float) -> None:
    if claims.get("tokenType") != "powered-by":
        raise AuthError(401, "JWT claim tokenType must be 'powered-by'")
    for claim in ("exp", "iat"):
        if claim not in claims:
            raise AuthError(401, "JWT must carry numeric iat and exp claims")
    for claim in ("exp", "iat", "nbf"):
        if claim in claims and not _numeric_date(claims[claim]):
            value = claims[claim]
            raise AuthError(
                401, f"JWT claim {claim} must be a NumericDate (a finite number of seconds), not {value!r}"
            )
    if claims["exp"] <= now:
        raise AuthError(401, "JWT has expired")
    if claims["iat"] > now + CLOCK_SKEW_SECONDS:
        raise AuthError(401, "JWT iat is in the future (check the client's clock)")
    if claims.get("nbf", now) > now + CLOCK_SKEW_SECONDS:
        raise AuthError(401, "JWT is not valid yet: nbf is in the future (check the client's clock)")


def _numeric_date(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


class FlowTokens:
    """Signs and checks the short-lived token inside a connect URL (the customer's bearer credential)."""

    def __init__(self, secret: str | None = None, ttl_seconds: float = 180) -> None:
        self.secret = secret or secrets.token_urlsafe(32)
        self.ttl_seconds = ttl_seconds

    def sign(self, claims: dict[str, Any], now: float) -> str:
        payload = {
            **claims,
            "tokenType": "powered-by",
            "nbf": int(now),
            "exp": int(now + self.ttl_seconds),
            "iss": FLOW_ISSUER,
            "aud": FLOW_AUDIENCE,
            "jti": secrets.token_hex(8),
        }
        return jwt.encode(payload, self.secret, algorithm="HS256")

    def verify(self, token: str, now: float) -> dict[str, Any]:
        """Return the flow's claims; raise ``ValueError`` for a forged, malformed or expired token."""
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                self.secret,
                algorithms=["HS256"],
                audience=FLOW_AUDIENCE,
                issuer=FLOW_ISSUER,
                options={"verify_exp": False, "verify_nbf": False},
            )
        except jwt.PyJWTError:
            raise ValueError("This link is not valid. Ask for a new connection link.") from None
        if claims.get("exp", 0) <= now:
            raise ValueError("This link has expired. Ask for a new connection link.")
        return claims
