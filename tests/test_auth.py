"""Private keys and JWT minting (airflow_provider_cdata.auth): no Airflow, no HTTP."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from airflow_provider_cdata import auth
from airflow_provider_cdata.auth import KeyLoadError, TokenMinter, load_private_key
from airflow_provider_cdata.emulator import KeyPair, generate_key_pair

PARENT = "0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9"
CHILD = "11111111-2222-4333-8444-555555555555"
OTHER_CHILD = "66666666-7777-4888-9999-aaaaaaaaaaaa"


class FakeClock:
    """Epoch seconds that only move when told to."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def minter(keys: KeyPair, clock: FakeClock, lifetime: int = 300, scope: str = "test") -> TokenMinter:
    return TokenMinter(load_private_key(keys.private_pem), PARENT, lifetime, clock=clock, scope=scope)


def decode(token: str, keys: KeyPair) -> dict[str, object]:
    claims: dict[str, object] = jwt.decode(
        token, keys.public_pem, algorithms=["RS256"], options={"verify_exp": False, "verify_iat": False}
    )
    return claims


@pytest.fixture(autouse=True)
def _fresh_token_cache() -> None:
    auth.clear_token_cache()


# -- the token -------------------------------------------------------------------------------------------
def test_token_has_the_documented_header_and_claims(keys: KeyPair) -> None:
    clock = FakeClock()
    token = minter(keys, clock).token(CHILD).token
    assert jwt.get_unverified_header(token) == {"alg": "RS256", "typ": "JWT"}
    assert decode(token, keys) == {
        "tokenType": "powered-by",
        "iat": int(clock.now),
        "exp": int(clock.now) + 300,
        "iss": PARENT,
        "sub": CHILD,
    }


def test_lifetime_sets_exp(keys: KeyPair) -> None:
    clock = FakeClock()
    token = minter(keys, clock, lifetime=900).token(CHILD).token
    claims = decode(token, keys)
    assert claims["exp"] == claims["iat"] + 900  # type: ignore[operator]


def test_1000_calls_mint_exactly_one_token(keys: KeyPair) -> None:
    tokens = minter(keys, FakeClock())
    handed_out = {tokens.token(CHILD).token for _ in range(1000)}
    assert len(handed_out) == 1
    assert tokens.minted == 1


def test_one_token_per_child_account(keys: KeyPair) -> None:
    tokens = minter(keys, FakeClock())
    first, second = tokens.token(CHILD).token, tokens.token(OTHER_CHILD).token
    assert first != second
    assert decode(second, keys)["sub"] == OTHER_CHILD
    assert tokens.minted == 2


def test_token_is_reminted_shortly_before_expiry_not_earlier(keys: KeyPair) -> None:
    clock = FakeClock()
    tokens = minter(keys, clock, lifetime=300)  # renew margin: min(60, 300 / 5) = 60 s
    first = tokens.token(CHILD)
    assert first.fresh
    clock.now += 239
    assert tokens.token(CHILD) == (first.token, False)
    clock.now += 2  # 241 s old: within 60 s of its expiry
    renewed = tokens.token(CHILD)
    assert renewed.fresh
    assert renewed.token != first.token
    assert decode(renewed.token, keys)["iat"] == int(clock.now)
    assert tokens.minted == 2


def test_short_lifetimes_renew_a_fifth_before_expiry(keys: KeyPair) -> None:
    clock = FakeClock()
    tokens = minter(keys, clock, lifetime=50)  # margin min(60, 10) = 10 s
    first = tokens.token(CHILD).token
    clock.now += 39
    assert tokens.token(CHILD).token == first
    clock.now += 2
    assert tokens.token(CHILD).token != first


def test_renew_mints_even_when_the_cached_token_looks_fresh(keys: KeyPair) -> None:
    clock = FakeClock()
    tokens = minter(keys, clock)
    tokens.token(CHILD)
    clock.now += 1
    renewed = tokens.renew(CHILD)
    assert renewed.fresh
    assert tokens.minted == 2
    assert tokens.token(CHILD) == (renewed.token, False), "the renewed token replaces the cached one"


def test_token_cache_is_shared_by_minters_of_the_same_scope_parent_child_and_key(keys: KeyPair) -> None:
    clock = FakeClock()
    first, second = minter(keys, clock), minter(keys, clock)
    token = first.token(CHILD).token
    assert second.token(CHILD) == (token, False)
    assert (first.minted, second.minted) == (1, 0)
    elsewhere = minter(keys, clock, scope="another API URL")
    assert elsewhere.token(CHILD).fresh
    assert elsewhere.minted == 1


def test_process_wide_counter_counts_every_mint(keys: KeyPair) -> None:
    before = auth.tokens_minted_total()
    tokens = minter(keys, FakeClock())
    tokens.token(CHILD)
    tokens.token(OTHER_CHILD)
    tokens.renew(CHILD)
    assert auth.tokens_minted_total() - before == 3


def test_minting_is_fast_because_it_signs_with_the_loaded_key(keys: KeyPair) -> None:
    clock = FakeClock()
    tokens = minter(keys, clock)
    started = time.perf_counter()
    for _ in range(20):
        tokens.renew(CHILD)
    per_token = (time.perf_counter() - started) / 20
    # Signing from the PEM text would re-parse the key every time (~50 ms a token on this box).
    assert per_token < 0.015, f"{per_token * 1000:.1f} ms per token"


# -- the key ---------------------------------------------------------------------------------------------
def test_loaded_keys_are_cached_process_wide_by_pem_hash(keys: KeyPair) -> None:
    first = load_private_key(keys.private_pem)
    started = time.perf_counter()
    second = load_private_key(keys.private_pem)
    assert second.key is first.key
    assert time.perf_counter() - started < 0.005
    assert auth.cached_key(keys.private_pem) == first
    assert first.fingerprint == auth.fingerprint(keys.private_pem)
    assert keys.private_pem not in repr(first.fingerprint)


def test_key_with_literal_backslash_n_escapes_is_accepted(keys: KeyPair) -> None:
    escaped = keys.private_pem.strip().replace("\n", "\\n")
    assert (
        load_private_key(escaped).key.private_numbers()
        == load_private_key(keys.private_pem).key.private_numbers()
    )


def test_key_from_a_file(tmp_path: Path, keys: KeyPair) -> None:
    path = tmp_path / "parent.pem"
    path.write_text(keys.private_pem)
    loaded = load_private_key(None, str(path))
    assert loaded.fingerprint == auth.fingerprint(keys.private_pem)


def test_key_text_wins_over_a_file(tmp_path: Path, keys: KeyPair, other_keys: KeyPair) -> None:
    path = tmp_path / "other.pem"
    path.write_text(other_keys.private_pem)
    assert load_private_key(keys.private_pem, str(path)).fingerprint == auth.fingerprint(keys.private_pem)


def _secret_lines(pem: str) -> list[str]:
    return [line for line in pem.splitlines() if line and not line.startswith("-----")]


def _pem(key: object, password: bytes | None = None) -> str:
    encryption = serialization.BestAvailableEncryption(password) if password else serialization.NoEncryption()
    return key.private_bytes(  # type: ignore[attr-defined,no-any-return]
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    ).decode()


@pytest.mark.parametrize(
    ("pem", "field", "fragment"),
    [
        (None, "password", "no private key"),
        ("", "password", "no private key"),
        ("   \n", "password", "no private key"),
        ("not a key at all", "password", "not a PEM private key"),
        (
            "-----BEGIN PRIVATE KEY-----\nMIIBVgIBADANBgkqhkiG9w0BAQEFAASCAUAwggE8AgEAAkEAq\n"
            "-----END PRIVATE KEY-----\n",
            "password",
            "not a PEM private key",
        ),
    ],
)
def test_unusable_key_text_is_refused_clearly(pem: str | None, field: str, fragment: str) -> None:
    with pytest.raises(KeyLoadError) as caught:
        load_private_key(pem)
    assert caught.value.field == field
    assert fragment in str(caught.value)


def test_encrypted_key_is_refused_without_key_material() -> None:
    key = generate_key_pair()
    loaded = serialization.load_pem_private_key(key.private_pem.encode(), password=None)
    encrypted = _pem(loaded, password=b"s3cret-passphrase")
    with pytest.raises(KeyLoadError, match="encrypted") as caught:
        load_private_key(encrypted)
    assert caught.value.field == "password"
    for line in _secret_lines(encrypted):
        assert line not in str(caught.value)


@pytest.mark.parametrize(
    ("make", "kind"),
    [
        (lambda: ec.generate_private_key(ec.SECP256R1()), "EC"),
        (ed25519.Ed25519PrivateKey.generate, "Ed25519"),
    ],
)
def test_non_rsa_key_is_refused_naming_its_kind(make: object, kind: str) -> None:
    pem = _pem(make())  # type: ignore[operator]
    with pytest.raises(KeyLoadError, match="RSA") as caught:
        load_private_key(pem)
    assert kind in str(caught.value)
    for line in _secret_lines(pem):
        assert line not in str(caught.value)


def test_malformed_key_message_contains_no_key_material(keys: KeyPair) -> None:
    lines = keys.private_pem.splitlines()
    broken = "\n".join([*lines[:5], lines[5][::-1], *lines[6:]])  # one base64 line scrambled
    with pytest.raises(KeyLoadError) as caught:
        load_private_key(broken)
    message = str(caught.value)
    for line in _secret_lines(keys.private_pem):
        assert line not in message


def test_missing_key_file_names_the_path_and_the_reason(tmp_path: Path) -> None:
    path = tmp_path / "missing.pem"
    with pytest.raises(KeyLoadError) as caught:
        load_private_key(None, str(path))
    assert caught.value.field == "private_key_path"
    assert str(path) in str(caught.value)
    assert "No such file" in str(caught.value)


def test_empty_key_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "empty.pem"
    path.write_text("\n")
    with pytest.raises(KeyLoadError, match="is empty") as caught:
        load_private_key(None, str(path))
    assert caught.value.field == "private_key_path"


def test_auth_and_validation_do_not_import_airflow() -> None:
    # Both are meant to be cheap to import (importing Airflow takes seconds) and usable without it.
    code = (
        "import sys, airflow_provider_cdata.auth, airflow_provider_cdata.validation; "
        "print(sorted(m for m in sys.modules if m == 'airflow' or m.startswith('airflow.')))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
