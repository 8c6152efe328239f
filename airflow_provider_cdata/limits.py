"""The defaults and bounds of the connection's extras, defined once.

The connection form (``get_provider_info`` in ``__init__.py``) declares them and
:mod:`airflow_provider_cdata.connection` checks them; ``tests/test_provider_info.py`` checks that the two
agree at every bound. No imports: the provider's entry point reads this module in every Airflow process.
"""

from __future__ import annotations

DEFAULT_TOKEN_LIFETIME = 300
TOKEN_LIFETIME_RANGE = (30, 3600)  # seconds each minted JWT is valid; both ends allowed

DEFAULT_TIMEOUT = 30.0
MAX_TIMEOUT = 600.0  # seconds: a timeout is more than 0 and at most this

DEFAULT_MAX_RETRIES = 5
MAX_RETRIES_LIMIT = 20
MAX_RETRIES_RANGE = (0, MAX_RETRIES_LIMIT)  # both ends allowed
