"""
### Clean up stale CData connections, weekly (dry run by default; a person approves real deletions)

Lists the child account's connections not modified for `stale_after_days` days and deletes them.

Safe by default:
- `dry_run` defaults to **true**: the run only logs which connections it would delete. Trigger with
  `{"dry_run": false}` (or change the default) to really delete.
- `require_approval` defaults to **true**: a real run (`dry_run` false) that found something to
  delete stops at `approve_deletion`, Airflow's own human-in-the-loop `ApprovalOperator`, whose page
  (Browse > Required Actions, or the task's page) lists every connection it would delete. **Approve**:
  exactly those are deleted, never one a later listing would add. **Reject**, or no answer within
  3 days: nothing is deleted, the delete task is skipped, the run succeeds. A dry run, or a run that
  found nothing, asks no one.
- Right before deleting, the connections are listed again: one the customer re-authenticated since
  it was listed (a new `lastModified`) is skipped, not deleted (XCom `skipped` of the delete task).
- `max_deletions` (default 10): when more connections than that are stale, nothing is deleted and
  the run fails, saying so (without asking for approval first): a wrong filter or a clock problem
  cannot wipe an account.

Params: `stale_after_days` (default 90), `dry_run`, `require_approval`, `max_deletions`, `account_id`
(empty: the `cdata_default` connection's). `find_stale_connections` returns the stale connections
(XCom); `delete_stale_connections` returns the ids it deleted.

The approval step needs Airflow 3.1+ with the standard provider's human-in-the-loop operators; on an
Airflow without them this file fails to parse, saying so. `REQUIRE_APPROVAL = False` below builds the
DAG without the step (every real run then deletes without asking).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from airflow.sdk import DAG, Param, task

from airflow_provider_cdata.operators import (
    DeleteConnectionOperator,
    ListConnectionsOperator,
    approval_operator,
)

# Whether real deletions wait for a person: the approval step is built, and `require_approval`
# defaults to true. False: no approval step (and no need for Airflow's human-in-the-loop operators).
REQUIRE_APPROVAL = True

ACCOUNT_ID = "{{ params.account_id or None }}"
# dag_run.run_after is set for scheduled and manual runs alike (logical_date may be None in Airflow 3).
STALE_BEFORE = "{{ (dag_run.run_after - macros.timedelta(days=params.stale_after_days)).isoformat() }}"
FOUND = "ti.xcom_pull(task_ids='find_stale_connections')"
# What the approver sees: every connection the delete task will be given, one table row each.
# Names are the customers' own text: a "|" would break the table, so it is escaped.
APPROVAL_SUBJECT = f"Delete {{{{ {FOUND} | length }}}} stale CData connections?"
APPROVAL_BODY = (
    f"{{% set found = {FOUND} %}}"
    "These connections of child account **{{ params.account_id or 'cdata_default' }}** were not "
    "modified for {{ params.stale_after_days }} days. **Approve** deletes exactly these (one the "
    "customer re-authenticates before then is skipped); **Reject** deletes nothing.\n\n"
    "| id | name | data source | last modified |\n|---|---|---|---|\n"
    "{% for c in found %}| {{ c.id }} | {{ (c.name or '') | replace('|', '\\\\|') }} | "
    "{{ c.dataSource }} | {{ c.lastModified }} |\n{% endfor %}"
)

params: dict[str, Any] = {
    "stale_after_days": Param(90, type="integer", minimum=1),
    "dry_run": Param(True, type="boolean"),
    "max_deletions": Param(10, type="integer", minimum=0),
    "account_id": Param(None, type=["null", "string"]),
}
if REQUIRE_APPROVAL:
    params["require_approval"] = Param(True, type="boolean")
    # Found now, while the file is parsed: a missing operator is an import error naming what is missing.
    ApprovalOperator = approval_operator()

with DAG(
    dag_id="cdata_stale_connection_cleanup",
    description="Delete CData connections not modified for N days (dry run by default, approved)",
    schedule="@weekly",
    start_date=datetime(2024, 1, 1),
    catchup=False,
    max_active_runs=1,
    tags=["cdata", "example"],
    doc_md=__doc__,
    render_template_as_native_obj=True,
    params=params,
) as dag:
    stale = ListConnectionsOperator(
        task_id="find_stale_connections",
        account_id=ACCOUNT_ID,
        modified_before=STALE_BEFORE,
    )

    # Given the listing itself (not ids): it deletes what was listed and shown, and skips any
    # connection changed since (see DeleteConnectionOperator's safe cleanup).
    delete = DeleteConnectionOperator(
        task_id="delete_stale_connections",
        account_id=ACCOUNT_ID,
        connection_ids=stale.output,
        dry_run="{{ params.dry_run }}",
        max_deletions="{{ params.max_deletions }}",
        # After the approval step or its bypass, whichever ran; a Reject skips this task directly.
        trigger_rule="none_failed_min_one_success",
    )

    if REQUIRE_APPROVAL:

        @task.branch
        def ask_for_approval(connections: list[dict[str, Any]], **context: Any) -> str:
            """Ask a person only when this run would really delete something."""
            p = context["params"]
            would_delete = not p["dry_run"] and 0 < len(connections) <= p["max_deletions"]
            return "approve_deletion" if p["require_approval"] and would_delete else "no_approval_needed"

        @task
        def no_approval_needed() -> None:
            """The bypass: a dry run, nothing found, too much found (the delete refuses), or not asked."""

        approve = ApprovalOperator(
            task_id="approve_deletion",
            subject=APPROVAL_SUBJECT,
            body=APPROVAL_BODY,
            defaults="Reject",  # what an unanswered request becomes after response_timeout
            response_timeout=timedelta(days=3),
        )
        branch = ask_for_approval(stale.output)
        bypass = no_approval_needed()
        branch >> [approve, bypass]
        [approve, bypass] >> delete
