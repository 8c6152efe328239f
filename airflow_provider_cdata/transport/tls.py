"""The certificates both transports trust: one rule, read from the environment once per session."""

from __future__ import annotations

import os
import ssl


def ca_bundle() -> str:
    """``REQUESTS_CA_BUNDLE`` or ``CURL_CA_BUNDLE`` (what requests honours), else certifi's bundle (what
    requests uses by default): the sync and the async calls trust the same authorities."""
    bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
    if bundle:
        return bundle
    import certifi

    return certifi.where()


def ssl_context(bundle: str) -> ssl.SSLContext:
    """A verifying client context that trusts ``bundle`` (a PEM file, or a directory of hashed certs)."""
    if os.path.isdir(bundle):
        return ssl.create_default_context(capath=bundle)
    return ssl.create_default_context(cafile=bundle)
