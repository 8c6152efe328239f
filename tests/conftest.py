"""Fixtures shared by every suite: one RSA key pair per session, a fresh emulator per test."""

from __future__ import annotations

import functools
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from airflow_provider_cdata.emulator import Emulator, KeyPair, generate_key_pair


@functools.lru_cache(maxsize=8)
def _private_key(pem: str) -> Any:
    """Loading a PEM RSA key costs ~50 ms (cryptography checks the key); do it once per key."""
    return load_pem_private_key(pem.encode(), password=None)


@pytest.fixture(scope="session")
def keys() -> KeyPair:
    return generate_key_pair()


@pytest.fixture(scope="session")
def other_keys() -> KeyPair:
    return generate_key_pair()


@dataclass
class CData:
    """An emulator with one registered parent and one child account, and a way to mint tokens."""

    emulator: Emulator
    keys: KeyPair
    parent_id: str
    account_id: str

    @property
    def base_url(self) -> str:
        return self.emulator.base_url

    def token(self, key: Any = None, algorithm: str = "RS256", **claims: Any) -> str:
        now = int(time.time())
        payload: dict[str, Any] = {
            "tokenType": "powered-by",
            "iat": now,
            "exp": now + 300,
            "iss": self.parent_id,
            "sub": self.account_id,
        }
        payload.update(claims)
        payload = {k: v for k, v in payload.items() if v is not None}
        return jwt.encode(payload, key or _private_key(self.keys.private_pem), algorithm=algorithm)

    def headers(self, **claims: Any) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(**claims)}"}


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    with Emulator() as emu:
        yield emu


@pytest.fixture
def cdata(emulator: Emulator, keys: KeyPair) -> CData:
    parent_id = emulator.register_parent(keys.public_pem)
    account_id = emulator.add_account(parent_id, external_id="customer-1")["id"]
    return CData(emulator=emulator, keys=keys, parent_id=parent_id, account_id=account_id)
