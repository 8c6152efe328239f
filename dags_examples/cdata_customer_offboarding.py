"""
### Offboard a customer: delete their connections and their child account (dry run by default)

Trigger one run per customer who leaves, with params:

| param | meaning |
|---|---|
| `tenant_id` | your platform's own id of the customer: their child account's external id |
| `dry_run` | default **true**: only log what would be deleted |
| `require_approval` | default **true**: a real run waits for a person's approval first |
| `max_deletions` | default 50: more connections than that, and nothing is deleted (the run fails) |

What happens:
1. `find_account` looks the child account up by `tenant_id` (List Accounts' Get by external id); no
   such account fails the run, saying so (nothing to offboard).
2. `list_connections` lists every connection of that account.
3. In a real run (`dry_run` false), `approve_offboarding` waits for a person: Airflow's own
   human-in-the-loop `ApprovalOperator`, whose page lists the account and every connection that would
   be deleted. **Reject**, or no answer within 3 days, deletes nothing.
4. `delete_connections` deletes exactly the connections listed and shown, except one the customer
   re-authenticated since (skipped, XCom `skipped`).
5. `delete_account` deletes the child account. It refuses (the run fails, naming it) while the
   account still has a connection: one skipped above, or one made meanwhile. Nothing is deleted that
   was not shown.

The approval step needs Airflow 3.1+ with the standard provider's human-in-the-loop operators; on an
Airflow without them this file fails to parse, saying so. `REQUIRE_APPROVAL = False` below builds the
DAG without the step.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from airflow.sdk import DAG, Param, task

from airflow_provider_cdata.operators import (
    DeleteAccountOperator,
    DeleteConnectionOperator,
    ListConnectionsOperator,
    approval_operator,
)

# Whether real deletions wait for a person: the approval step is built, and `require_approval`
# defaults to true. False: no approval step (and no need for Airflow's human-in-the-loop operators).
REQUIRE_APPROVAL = True

ACCOUNT_ID = "{{ ti.xcom_pull(task_ids='find_account')['id'] }}"
LISTED = "ti.xcom_pull(task_ids='list_connections')"
APPROVAL_SUBJECT = (
    "Offboard {{ params.tenant_id }}: delete its child account and "
    f"{{{{ {LISTED} | length }}}} connections?"
)
# What the approver sees: the account, then every connection the delete task will be given. Names
# are the customers' own text: a "|" would break the table, so it is escaped.
APPROVAL_BODY = (
    "Child account **{{ ti.xcom_pull(task_ids='find_account')['id'] }}** (external id "
    "`{{ params.tenant_id }}`) and these connections. **Approve** deletes exactly these, then the "
    "account; **Reject** deletes nothing.\n\n"
    "| id | name | data source | last modified |\n|---|---|---|---|\n"
    f"{{% for c in {LISTED} %}}| {{{{ c.id }}}} | {{{{ (c.name or '') | replace('|', '\\\\|') }}}} | "
    "{{ c.dataSource }} | {{ c.lastModified }} |\n{% endfor %}"
)

params: dict[str, Any] = {
    "tenant_id": Param(type="string", minLength=1, description="The child account's external id"),
    "dry_run": Param(True, type="boolean"),
    "max_deletions": Param(50, type="integer", minimum=0),
}
if REQUIRE_APPROVAL:
    params["require_approval"] = Param(True, type="boolean")
    # Found now, while the file is parsed: a missing operator is an import error naming what is missing.
    ApprovalOperator = approval_operator()

with DAG(
    dag_id="cdata_customer_offboarding",
    description="Delete a customer's CData connections and child account (dry run by default, approved)",
    schedule=None,
    start_date=datetime(2024, 1, 1),
    catchup=False,
    tags=["cdata", "example"],
    doc_md=__doc__,
    render_template_as_native_obj=True,
    params=params,
) as dag:

    @task
    def find_account(**context: Any) -> dict[str, Any]:
        """The tenant's child account, by its external id."""
        # Imported here, when the task runs: the hook brings the HTTP libraries, which parsing never needs.
        from airflow_provider_cdata.hooks import CDataHook

        tenant = context["params"]["tenant_id"]
        account = CDataHook().get_account(tenant)
        if account is None or account["externalId"] != tenant:
            raise LookupError(f"No child account has the external id {tenant!r}: nothing to offboard")
        return account

    connections = ListConnectionsOperator(task_id="list_connections", account_id=ACCOUNT_ID)

    # Given the listing itself: it deletes what was listed and shown, and skips any connection
    # changed since (see DeleteConnectionOperator's safe cleanup).
    delete_connections = DeleteConnectionOperator(
        task_id="delete_connections",
        account_id=ACCOUNT_ID,
        connection_ids=connections.output,
        dry_run="{{ params.dry_run }}",
        max_deletions="{{ params.max_deletions }}",
        # After the approval step or its bypass, whichever ran; a Reject skips this task directly.
        trigger_rule="none_failed_min_one_success",
    )

    # Without delete_connections=True: a connection left (skipped above, or new) stops the deletion.
    delete_account = DeleteAccountOperator(
        task_id="delete_account", account_id=ACCOUNT_ID, dry_run="{{ params.dry_run }}"
    )

    find_account() >> connections
    delete_connections >> delete_account

    if REQUIRE_APPROVAL:

        @task.branch
        def ask_for_approval(listed: list[dict[str, Any]], **context: Any) -> str:
            """Ask a person only when this run would really delete (even an account with no connections)."""
            p = context["params"]
            would_delete = not p["dry_run"] and len(listed) <= p["max_deletions"]
            return "approve_offboarding" if p["require_approval"] and would_delete else "no_approval_needed"

        @task
        def no_approval_needed() -> None:
            """The bypass: a dry run, too many connections (the delete refuses), or not asked."""

        approve = ApprovalOperator(
            task_id="approve_offboarding",
            subject=APPROVAL_SUBJECT,
            body=APPROVAL_BODY,
            defaults="Reject",  # what an unanswered request becomes after response_timeout
            response_timeout=timedelta(days=3),
        )
        branch = ask_for_approval(connections.output)
        bypass = no_approval_needed()
        branch >> [approve, bypass]
        [approve, bypass] >> delete_connections
