"""A task that handles every secret the provider has, for the leak scan (tests/test_reliability_leaks.py):
its hook loads the key and mints tokens, it gets a connect link, and it asks Airflow's secrets masker
what a task log line holding each of them would show."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from airflow.sdk import DAG, task

with DAG("cdata_test_secrets_in_task", schedule=None, start_date=datetime(2024, 1, 1), catchup=False):

    @task
    def handle_secrets() -> dict[str, Any]:
        from airflow_provider_cdata.hooks import CDataHook

        try:  # Airflow's own redaction, as its task logs apply it
            from airflow.sdk._shared.secrets_masker import redact
        except ImportError:  # pragma: no cover - older Airflow 3.x
            from airflow.sdk.execution_time.secrets_masker import redact  # type: ignore[no-redef]

        hook = CDataHook()
        hook.list_connections()
        url = hook.create_connection("Salesforce", "https://app.example.com/done")
        settings = hook.settings
        pem = settings.private_key
        if pem is None and settings.private_key_path:
            with open(settings.private_key_path, encoding="utf-8") as key_file:
                pem = key_file.read()
        assert pem is not None
        first_line = pem.splitlines()[1]
        token = hook._token(settings.account_id or "", renew=False)  # the token the calls above used
        # What a task log line holding each secret shows once Airflow's masker has redacted it, as the
        # supervisor writes task logs. (dag.test() and `airflow tasks test` print task log lines to the
        # console without the masker, Airflow 3.3: a task that logs a secret itself shows it there.)
        return {
            "first_line": redact(f"the key's first line: {first_line}"),
            "pem": redact(f"the key: {pem}"),
            "token": redact(f"Bearer {token}"),
            "url": redact(url),
            "link": url,
            "minted": hook.tokens_minted,
        }

    handle_secrets()
