"""The secret scan of the onboarding suite finds what it must, and nothing in Airflow's ordinary log lines.

The suite asserts that the scan finds nothing in the real task logs; this proves that an empty result
means "clean", not "blind".
"""

from __future__ import annotations

import jwt
import pytest

from airflow_provider_cdata.emulator import KeyPair
from tests.e2e.harness import jwt_signature, leaked_secrets, pem_body_lines

pytestmark = pytest.mark.e2e

# Real lines of a task log, as the api-server serves them (tests/e2e/api.py joins each entry's fields).
AIRFLOW_LOG = """\
::group::Log message source details sources=['/tmp/pytest-of-root/pytest-53/airflow-home0/logs/\
dag_id=cdata_customer_onboarding/run_id=manual__2026-11-27T19:30:21.437521+00:00/task_id=hand_off_link/\
attempt=1.log']
Filling up the DagBag from /work/main/dags_examples/cdata_customer_onboarding.py \
run_id=manual__2026-11-27T19:30:21.437521+00:00 ti_id=01a21e7c-c072-7a57-8583-eeb495b56b76 \
task_id=hand_off_link logger=airflow.dag_processing.dagbag.BundleDagBag filename=dagbag.py lineno=460
Connect link for the customer (valid for a few minutes): http://127.0.0.1:36049/oem/user/connections/\
edit?token=eyJ******&driver=Salesforce&redirectUrl=https%3A%2F%2Fapp.example.com%2Fonboarded%3Fcustomer%3D42 \
logger=airflow.task.operators.airflow.providers.standard.decorators.python._PythonDecoratedOperator
Connection 6f1f0a0e-0f57-4c59-9b6e-4cf1f0c6a4d2 (Acme Salesforce) appeared: Connection \
6f1f0a0e-0f57-4c59-9b6e-4cf1f0c6a4d2 matches externalId='onboarding-manual__2026-11-27T19:30:21.437521+00:00'
"""


def test_ordinary_airflow_log_lines_hold_nothing_secret_looking() -> None:
    assert leaked_secrets(AIRFLOW_LOG, []) == []


def test_a_jwt_signature_is_found_without_the_rest_of_its_token(keys: KeyPair) -> None:
    token = jwt.encode({"sub": "account"}, keys.private_pem, algorithm="RS256")
    log = f"{AIRFLOW_LOG}Calling CData with signature {jwt_signature(token)}\n"

    found = leaked_secrets(log, [token, jwt_signature(token)])

    assert len(found) == 2, found  # once as the known signature, once as an opaque value
    assert all(jwt_signature(token)[:20] in line for line in found)


def test_a_line_of_the_private_key_is_found(keys: KeyPair) -> None:
    line = pem_body_lines(keys.private_pem)[3]
    assert len(line) == 64

    assert leaked_secrets(f"{AIRFLOW_LOG}key material: {line}\n", pem_body_lines(keys.private_pem))


def test_an_unknown_token_is_found_by_its_shape() -> None:
    # The connect URL's token is HS256: its 43-character signature is the shortest one to catch.
    unknown = jwt_signature(jwt.encode({"jti": "1"}, "a flow secret of 32 bytes at least", algorithm="HS256"))
    assert len(unknown) == 43

    (found,) = leaked_secrets(f"{AIRFLOW_LOG}session={unknown}\n", [])

    assert found.startswith("opaque value:")
    assert unknown in found
