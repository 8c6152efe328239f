"""Run a DAG written by the test itself (source text) with Airflow's own ``dag.test()``.

``dag.test()`` only runs a DAG that a configured DAG bundle holds, so the source is written to a DAG file
in a folder of its own, added as one more bundle for the test (through the same setting conftest.py uses),
and parsed by Airflow from there, as a user's DAG file would be.
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from pathlib import Path

import pytest

from airflow_provider_cdata._compat import dag_bag
from tests.dag_runner import DagResult, init_airflow_db

BUNDLE = "cdata-test-generated"
_SETTING = "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST"


def dag_import_errors(source: str, dag_id: str, folder: Path) -> dict[str, str]:
    """Write ``source`` as ``folder/<dag_id>.py`` and parse it as Airflow does: the import errors, by file."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{dag_id}.py").write_text(source)
    errors: dict[str, str] = dag_bag(str(folder)).import_errors
    return errors


def run_dag_source(
    source: str,
    dag_id: str,
    folder: Path,
    monkeypatch: pytest.MonkeyPatch,
    conf: dict[str, object] | None = None,
    logical_date: datetime | None = None,
) -> DagResult:
    """Write ``source`` as ``folder/<dag_id>.py``, make ``folder`` a DAG bundle, run DAG ``dag_id`` once."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{dag_id}.py").write_text(source)
    bundles = [b for b in json.loads(os.environ[_SETTING]) if b["name"] != BUNDLE]
    bundles.append(
        {
            "name": BUNDLE,
            "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
            "kwargs": {"path": str(folder)},
        }
    )
    monkeypatch.setenv(_SETTING, json.dumps(bundles))
    init_airflow_db()
    bag = dag_bag(str(folder))
    if bag.import_errors:
        raise AssertionError(f"DAG import errors: {bag.import_errors}")
    dag = bag.get_dag(dag_id)
    assert dag is not None, f"{dag_id} is not defined in its source"
    dag_run = dag.test(run_conf=conf, logical_date=logical_date or datetime.now(timezone.utc))
    return DagResult(dag_id=dag_id, run_id=dag_run.run_id, state=str(dag_run.state))
