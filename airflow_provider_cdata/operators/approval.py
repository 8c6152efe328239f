"""A person's approval before anything is deleted: Airflow's own human-in-the-loop ApprovalOperator.

The provider adds no approval mechanism of its own. This module finds Airflow's (the standard
provider's ``ApprovalOperator``, Airflow 3.1+) for the example DAGs, and says clearly, while the DAG
file is parsed, when the Airflow in use has none.
"""

from __future__ import annotations

from typing import Any

from airflow_provider_cdata._compat import HITL_MODULE, approval_operator_class
from airflow_provider_cdata.exceptions import CDataError


class ApprovalUnavailableError(CDataError):
    """Approval was asked for, and this Airflow has no human-in-the-loop ApprovalOperator."""


def approval_operator() -> type[Any]:
    """Airflow's ``ApprovalOperator`` class; raises :class:`ApprovalUnavailableError` where there is none.

    Call it while the DAG file is parsed (at module level), so that a DAG which asks for approval on
    an Airflow without human-in-the-loop operators shows an import error naming what is missing,
    instead of a run that deletes without asking.
    """
    approval = approval_operator_class()
    if approval is None:
        raise ApprovalUnavailableError(
            "This DAG asks a person to approve before deleting, with Airflow's human-in-the-loop "
            f"ApprovalOperator ({HITL_MODULE}), and this Airflow has none: it needs Airflow 3.1+ and "
            "an apache-airflow-providers-standard release with human-in-the-loop operators. Upgrade "
            "them, or build the DAG without its approval step (REQUIRE_APPROVAL = False in the "
            "example DAGs)."
        )
    return approval
