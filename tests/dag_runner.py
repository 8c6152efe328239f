"""Run DAGs with Airflow's own ``dag.test()`` and read back what Airflow recorded: task states,
XCom values and rendered template fields, from the metadata database of the test session."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
DAG_FOLDERS = (REPO / "tests" / "dags", REPO / "dags_examples")


@functools.cache
def init_airflow_db() -> None:
    """Create the session's SQLite metadata database once (the AIRFLOW_HOME conftest.py made)."""
    from airflow.utils import db

    db.resetdb()


def _dag_bag(folder: Path) -> Any:
    # Parsed afresh for every run: dag.test() renders templates into the very task objects it runs,
    # so a DAG object reused for a second run would start from the first run's rendered values.
    from airflow_provider_cdata._compat import dag_bag

    bag = dag_bag(str(folder))
    if bag.import_errors:
        raise AssertionError(f"DAG import errors in {folder}: {bag.import_errors}")
    return bag


def get_dag(dag_id: str) -> Any:
    for folder in DAG_FOLDERS:
        dag = _dag_bag(folder).get_dag(dag_id)
        if dag is not None:
            return dag
    raise KeyError(dag_id)


@dataclass
class DagResult:
    dag_id: str
    run_id: str
    state: str

    def task_states(self) -> dict[str, str]:
        """``task_id`` (``task_id[i]`` for mapped tasks) to state."""
        from airflow.models.taskinstance import TaskInstance
        from airflow.utils.session import create_session

        with create_session() as session:
            rows = session.query(TaskInstance).filter_by(dag_id=self.dag_id, run_id=self.run_id).all()
            return {
                (r.task_id if r.map_index < 0 else f"{r.task_id}[{r.map_index}]"): str(r.state) for r in rows
            }

    def xcom(self, task_id: str, key: str = "return_value", map_index: int = -1) -> Any:
        from airflow.models.xcom import XComModel
        from airflow.utils.session import create_session

        with create_session() as session:
            row = (
                session.query(XComModel)
                .filter_by(
                    dag_id=self.dag_id, run_id=self.run_id, task_id=task_id, key=key, map_index=map_index
                )
                .one_or_none()
            )
            if row is None:
                raise KeyError(f"no XCom {key!r} for {task_id}[{map_index}]")
            return row.value

    def rendered(self, task_id: str, map_index: int = -1) -> dict[str, Any]:
        from airflow.models.renderedtifields import RenderedTaskInstanceFields
        from airflow.utils.session import create_session

        with create_session() as session:
            row = (
                session.query(RenderedTaskInstanceFields)
                .filter_by(dag_id=self.dag_id, run_id=self.run_id, task_id=task_id, map_index=map_index)
                .one()
            )
            fields: dict[str, Any] = row.rendered_fields
            return fields


def run_dag(dag_id: str, conf: dict[str, Any] | None = None) -> DagResult:
    """Run one DAG run of ``dag_id`` in this process with ``dag.test()`` (triggers run in-line)."""
    init_airflow_db()
    dag_run = get_dag(dag_id).test(run_conf=conf)
    return DagResult(dag_id=dag_id, run_id=dag_run.run_id, state=str(dag_run.state))
