"""ConnectionSensor: wait until a customer's connection appears.

One question, asked the same way in poke, reschedule and deferrable mode: does List Connections show
a connection matching every given criterion (:class:`~airflow_provider_cdata.criteria.ConnectionCriteria`)?
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseSensorOperator, PokeReturnValue

from airflow_provider_cdata import DEFAULT_CONN_ID
from airflow_provider_cdata._compat import AirflowSensorTimeout, conf
from airflow_provider_cdata.criteria import ConnectionCriteria, validate_statuses
from airflow_provider_cdata.exceptions import CDataError

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_provider_cdata.hooks import CDataHook

# The triggerer ends the wait itself at the sensor's timeout, with a clear message; Airflow's own
# deferral timeout is only a backstop for a triggerer that is down, so it fires a little later.
DEFERRAL_BACKSTOP_SECONDS = 60


def _default_deferrable() -> bool:
    return bool(conf.getboolean("operators", "default_deferrable", fallback=False))


class ConnectionSensor(BaseSensorOperator):
    """Succeed when a connection matching every given criterion is listed; return it (a dict) to XCom.

    :param external_id: the connection's ``externalId`` (what CreateConnectionOperator was given).
    :param connection_name: the connection's name, exactly.
    :param data_source: the data source, case-insensitive.
    :param modified_after: only a connection modified strictly after this (datetime or ISO 8601;
        a date alone, as ``{{ ds }}`` renders, means midnight UTC of that day).
    :param statuses: accepted ``status`` values: one name (``"Authenticated"``) or a list of names
        (default ``("Authenticated",)``); None for any. An empty list is refused. A connection without
        a ``status`` field (older API versions) passes this check. ``Conditional`` (CData's status
        for a connection whose Save & Test passed only in part) is not ready by default: add it,
        ``statuses=["Authenticated", "Conditional"]``, to accept it. Any other value CData sends is
        compared as it is (the set is open). Templated.
    :param deferrable: hand the wait to the triggerer (``ConnectionTrigger``), holding no worker slot.
    """

    template_fields: Sequence[str] = (
        "account_id",
        "external_id",
        "connection_name",
        "data_source",
        "modified_after",
        "statuses",
    )
    ui_color = "#e8f4fd"

    def __init__(
        self,
        *,
        cdata_conn_id: str = DEFAULT_CONN_ID,
        account_id: str | None = None,
        external_id: str | None = None,
        connection_name: str | None = None,
        data_source: str | None = None,
        modified_after: Any = None,
        statuses: str | Sequence[str] | None = ("Authenticated",),
        deferrable: bool | None = None,
        poke_interval: timedelta | float = 30,
        **kwargs: Any,
    ) -> None:
        super().__init__(poke_interval=poke_interval, **kwargs)
        self.cdata_conn_id = cdata_conn_id
        self.account_id = account_id
        self.external_id = external_id
        self.connection_name = connection_name
        self.data_source = data_source
        self.modified_after = modified_after
        # An unusable allow-list (an empty one) fails the DAG file; anything else is checked once rendered.
        if statuses is None or isinstance(statuses, str | list | tuple | set | frozenset):
            validate_statuses(statuses)
        # Kept as given, not as tuple(statuses): that split a single status name into its letters.
        self.statuses = statuses
        self.deferrable = _default_deferrable() if deferrable is None else deferrable

    @cached_property
    def hook(self) -> CDataHook:
        from airflow_provider_cdata.hooks import CDataHook

        return CDataHook(cdata_conn_id=self.cdata_conn_id, account_id=self.account_id)

    def criteria(self) -> ConnectionCriteria:
        """The rendered arguments, validated (a bad one fails the task before any request)."""
        return ConnectionCriteria.build(
            external_id=self.external_id,
            connection_name=self.connection_name,
            data_source=self.data_source,
            modified_after=self.modified_after,
            statuses=self.statuses,
        )

    def poke(self, context: Context) -> PokeReturnValue:
        criteria = self.criteria()
        connections = self.hook.list_connections(
            account_id=self.account_id, data_source=criteria.data_source, external_id=criteria.external_id
        )
        match = criteria.first_match(connections)
        if match is None:
            self.log.info("No connection matches %s yet (%d listed)", criteria.describe(), len(connections))
            return PokeReturnValue(is_done=False)
        self.log.info(
            "Connection %s (%s) matches %s", match.get("id"), match.get("name"), criteria.describe()
        )
        return PokeReturnValue(is_done=True, xcom_value=match)

    def execute(self, context: Context) -> Any:
        if not self.deferrable:
            return super().execute(context)
        first = self.poke(context)
        if first.is_done:
            return first.xcom_value
        # Imported here, not at the top: airflow.triggers.base costs ~9 ms, paid by every DAG file that
        # imports this module while it is parsed (benchmarks/, figure 5), and only deferring needs it.
        from airflow_provider_cdata.triggers import ConnectionTrigger

        trigger = ConnectionTrigger(
            cdata_conn_id=self.cdata_conn_id,
            account_id=self.account_id,
            criteria=self.criteria().to_dict(),
            poke_interval=self.poke_interval,
            deadline=time.time() + self.timeout,
        )
        self.defer(
            trigger=trigger,
            method_name="execute_complete",
            timeout=timedelta(seconds=self.timeout + DEFERRAL_BACKSTOP_SECONDS),
        )

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> dict[str, Any]:
        """Resume after the trigger: success returns the connection; anything else fails, with the
        trigger's message (a timeout as AirflowSensorTimeout, so ``soft_fail`` skips as usual)."""
        from airflow_provider_cdata.triggers import SUCCESS, TIMEOUT  # lazily: see execute()

        if not event or event.get("status") != SUCCESS:
            message = (event or {}).get("message") or f"ConnectionTrigger ended without success: {event!r}"
            if (event or {}).get("status") == TIMEOUT:
                raise AirflowSensorTimeout(message)
            raise CDataError(message)
        connection: dict[str, Any] = event["connection"]
        self.log.info(
            "Connection %s (%s) appeared: %s",
            connection.get("id"),
            connection.get("name"),
            event.get("message"),
        )
        return connection
