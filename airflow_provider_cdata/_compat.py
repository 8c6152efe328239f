"""Every difference between the Airflow 3.x versions the provider supports (3.1+), in one place.

Each name is a plain ``try``/``except ImportError`` import: the new home first (the Task SDK), then the
one of the oldest supported Airflow. mypy (run against Airflow 3.3) follows the first branch; the
fallback lines carry the ignores they need there. Once ``airflow.sdk`` is loaded (DAG parsing has loaded
it), importing this module costs well under a millisecond (benchmarks/, figure 5): every module below is
loaded by then. The form converters and :func:`dag_bag` import what they need only when called.
"""

from __future__ import annotations

import contextlib
import importlib
import sys
import threading
from collections.abc import Iterator, Mapping
from typing import Any

try:  # hooks come from the Task SDK (Airflow 3.1+)
    from airflow.sdk import BaseHook
except ImportError:  # pragma: no cover - Airflow 3.0, not supported (pyproject.toml)
    from airflow.hooks.base import BaseHook  # type: ignore[attr-defined,no-redef]

try:  # where Airflow 3.1+ defines it; airflow.exceptions re-exports it
    from airflow.sdk.exceptions import AirflowException
except ImportError:  # pragma: no cover - Airflow 3.0, not supported
    from airflow.exceptions import AirflowException  # type: ignore[attr-defined]

try:  # the Task SDK's since Airflow 3.2
    from airflow.sdk.exceptions import AirflowNotFoundException
except ImportError:  # pragma: no cover - Airflow 3.1
    from airflow.exceptions import AirflowNotFoundException  # type: ignore[attr-defined]

try:  # the Task SDK's since Airflow 3.2
    from airflow.sdk.exceptions import AirflowSensorTimeout
except ImportError:  # pragma: no cover - Airflow 3.1 (there a deprecated alias, typed Any)
    from airflow.exceptions import AirflowSensorTimeout  # type: ignore[no-redef]

try:  # the Task SDK's since Airflow 3.2
    from airflow.sdk.configuration import conf
except ImportError:  # pragma: no cover - Airflow 3.1
    from airflow.configuration import conf

try:  # Airflow's secrets masker, wherever this Airflow 3.x keeps it (airflow.sdk.log in 3.1+)
    from airflow.sdk.log import mask_secret
except ImportError:  # pragma: no cover - older Airflow 3.x
    try:
        from airflow.sdk.execution_time.secrets_masker import mask_secret  # type: ignore[no-redef]
    except ImportError:
        from airflow.utils.log.secrets_masker import mask_secret  # type: ignore[import-not-found,no-redef]

try:  # Airflow 3.3+: in a trigger it tells the supervisor without blocking the event loop
    from airflow.sdk.log import amask_secret
except ImportError:  # pragma: no cover - Airflow 3.1 and 3.2
    # Their mask_secret masks in this process at once. In a triggerer its message to the supervisor goes
    # through asgiref's async_to_sync, which refuses to run on the event loop's thread; mask_secret
    # swallows that error, so the loop is never blocked (the supervisor's own log lines still pass
    # through Airflow's JWT redaction).

    async def amask_secret(secret: str) -> None:  # type: ignore[misc]
        mask_secret(secret)


# -- the connection form: Airflow 3.2+ reads the provider info, Airflow 3.1 the hook's methods ----------
# The one declaration is ``conn-fields`` / ``ui-field-behaviour`` in airflow_provider_cdata/__init__.py;
# these turn it into what ``get_connection_form_widgets`` / ``get_ui_field_behaviour`` return.

# Airflow 3.1 accepts these four wtforms field classes only (anything else drops the whole form).
_WTFORMS_FIELD = {"string": "StringField", "integer": "IntegerField", "boolean": "BooleanField"}


def form_widgets(conn_fields: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """``conn-fields`` as wtforms fields, for Airflow before 3.2.

    wtforms is imported when this is called: Airflow 3.1's api-server puts its own stand-ins for it in
    place (it needs no Flask) and reads each field's label, description and default from them. A
    ``number`` has no field there: it becomes a text field (the hook reads text as a number, and still
    checks the bounds, naming the field). Bounds are not drawn by that form; the hook enforces them.
    """
    wtforms = importlib.import_module("wtforms")
    widgets: dict[str, Any] = {}
    for name, spec in conn_fields.items():
        schema = spec.get("schema", {})
        types = schema.get("type", "string")
        kind = next((t for t in ([types] if isinstance(types, str) else types) if t != "null"), "string")
        field_class = getattr(wtforms, _WTFORMS_FIELD.get(kind, "StringField"))
        default = schema.get("default")
        if kind not in _WTFORMS_FIELD and default is not None:
            default = str(default)
        label, description = spec.get("label", name), spec.get("description")
        widgets[name] = field_class(label, description=description, default=default)
    return widgets


def field_behaviour(behaviour: Mapping[str, Any]) -> dict[str, Any]:
    """``ui-field-behaviour`` (kebab-case) in the shape ``get_ui_field_behaviour`` returns, for Airflow
    before 3.2 (the same conversion Airflow 3.2+ applies to the provider info itself)."""
    return {
        "hidden_fields": list(behaviour.get("hidden-fields", [])),
        "relabeling": dict(behaviour.get("relabeling", {})),
        "placeholders": dict(behaviour.get("placeholders", {})),
    }


def dag_bag_class() -> type[Any]:
    """Airflow's ``DagBag`` class, imported now: for ``scripts/demo.py`` and the tests (the provider
    itself never parses DAGs). It moved in Airflow 3.2."""
    try:  # Airflow 3.2+
        from airflow.dag_processing.dagbag import DagBag
    except ImportError:  # pragma: no cover - Airflow 3.1
        from airflow.models.dagbag import DagBag  # type: ignore[no-redef]
    return DagBag


def dag_bag(dag_folder: str) -> Any:
    """The DAGs of one folder, parsed now by Airflow's ``DagBag``."""
    return dag_bag_class()(dag_folder=dag_folder)


# -- human in the loop: the standard provider's ApprovalOperator (Airflow 3.1+) ---------------------------
HITL_MODULE = "airflow.providers.standard.operators.hitl"


def approval_operator_class() -> type[Any] | None:
    """Airflow's own ``ApprovalOperator``, or None where this Airflow has none.

    Imported when called, not with this module: only a DAG that asks for approval pays for the HITL
    operators and their trigger. The standard provider before its HITL release has no such module;
    on an Airflow before 3.1 the module exists but refuses to load (AirflowOptionalProviderFeatureException,
    an AirflowException).
    """
    try:
        module = importlib.import_module(HITL_MODULE)
    except (ImportError, AirflowException):
        return None
    approval: type[Any] | None = getattr(module, "ApprovalOperator", None)
    return approval


# -- the in-process supervisor (dag.test(), `airflow tasks test`) ----------------------------------------
# Airflow's mask_secret adds a secret to this process's masker, then sends MaskSecret(value=<the secret>)
# to the supervisor. A real supervisor is another process and logs that message without its body. Under
# dag.test() and `airflow tasks test` the supervisor runs in the task's own process: its comms class,
# InProcessSupervisorComms (airflow.sdk.execution_time.supervisor, Airflow 3.1+), logs every message
# it sends whole at DEBUG ("Sending request msg=MaskSecret(value='-----BEGIN PRIVATE KEY-----...')"),
# and the masker cannot redact a pydantic model. There the supervisor shares the task's masker, so the
# message carries nothing it needs: it is not sent. Where the class does not exist (other 3.x versions),
# nothing changes.
_IN_PROCESS_COMMS = ("airflow.sdk.execution_time.supervisor", "InProcessSupervisorComms")
_TASK_RUNNER = "airflow.sdk.execution_time.task_runner"
_comms_swap = threading.Lock()


def _in_process_comms() -> Any:
    """The in-process supervisor's comms if the running task talks to one, else None.

    Only modules already imported are looked at: if Airflow has not loaded the supervisor module,
    no in-process supervisor can be running, and nothing is imported here.
    """
    runner, supervisor = sys.modules.get(_TASK_RUNNER), sys.modules.get(_IN_PROCESS_COMMS[0])
    comms_class = getattr(supervisor, _IN_PROCESS_COMMS[1], None)
    comms = getattr(runner, "SUPERVISOR_COMMS", None)
    if isinstance(comms_class, type) and isinstance(comms, comms_class):
        return comms
    return None


class _LocalMaskSecret:
    """The in-process comms, except that MaskSecret messages stay here (the masker has them already)."""

    def __init__(self, comms: Any) -> None:
        self._comms = comms

    def send(self, msg: Any) -> Any:
        if type(msg).__name__ == "MaskSecret":
            return None  # the in-process supervisor answers nothing to it either
        return self._comms.send(msg)

    async def asend(self, msg: Any) -> Any:
        if type(msg).__name__ == "MaskSecret":
            return None
        return await self._comms.asend(msg)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._comms, name)


@contextlib.contextmanager
def secrets_stay_in_process() -> Iterator[None]:
    """While inside, Airflow's ``mask_secret`` (the provider's calls and Airflow's own, e.g. when it
    reads a connection) masks locally and sends no MaskSecret message to an in-process supervisor.

    With a real (subprocess) supervisor, or an Airflow without the in-process one, it does nothing.
    """
    comms = _in_process_comms()
    if comms is None:
        yield
        return
    runner = sys.modules[_TASK_RUNNER]
    with _comms_swap:  # one swap at a time: the original comms is always what is put back
        runner.SUPERVISOR_COMMS = _LocalMaskSecret(comms)  # type: ignore[attr-defined]
        try:
            yield
        finally:
            runner.SUPERVISOR_COMMS = comms  # type: ignore[attr-defined]


def in_process_supervisor() -> bool:
    """True under dag.test() / `airflow tasks test` on an Airflow whose in-process supervisor is known."""
    return _in_process_comms() is not None


# -- an event trigger's asset state store (Airflow 3.3+) --------------------------------------------------
# Airflow 3.3's triggerer sets ``BaseEventTrigger.asset_state_store`` (AssetStateStoreAccessors over the
# assets the trigger watches) before run(); values persist per asset in the metadata database. 3.1 and
# 3.2 have no such attribute: there ``WatermarkStore`` holds nothing and a restart starts from a baseline.


class WatermarkStore:
    """A trigger's one JSON value in the state store of every asset it watches; inert without a store.

    Store failures are logged and never end the trigger: the watcher then behaves as on an Airflow
    without a store (nothing loaded; not saved this time, tried again next poll).
    """

    def __init__(self, accessors: Any, key: str, log: Any) -> None:
        self._key, self._log = key, log
        self._stores: list[Any] = []
        if accessors is not None:
            by_name = getattr(accessors, "_by_name", None)
            by_uri = getattr(accessors, "_by_uri", None)
            if isinstance(by_name, dict) and isinstance(by_uri, dict):
                # One trigger can watch several assets (same kwargs, same trigger): each keeps its copy.
                self._stores = [*by_name.values(), *by_uri.values()]
            else:  # an accessor shape this module does not know: the documented single-asset methods
                self._stores = [accessors]

    @property
    def available(self) -> bool:
        return bool(self._stores)

    async def load(self) -> dict[str, str] | None:
        """The saved value (the first asset's that has one), or None: nothing saved, or no store."""
        for store in self._stores:
            try:
                value = await store.aget(self._key, None)
            except Exception as exc:  # the store is an optimisation of restarts, never a failure
                self._log.warning("Could not read the asset state store (%s): starting from a baseline", exc)
                return None
            if isinstance(value, dict):
                return {str(k): str(v) for k, v in value.items()}
        return None

    async def save(self, value: dict[str, str]) -> bool:
        """Save ``value`` in every watched asset's store; False if there is none or a write failed."""
        if not self._stores:
            return False
        try:
            for store in self._stores:
                await store.aset(self._key, value)
        except Exception as exc:
            self._log.warning("Could not write the asset state store (%s): trying again next poll", exc)
            return False
        return True


__all__ = [
    "AirflowException",
    "AirflowNotFoundException",
    "AirflowSensorTimeout",
    "BaseHook",
    "WatermarkStore",
    "amask_secret",
    "approval_operator_class",
    "conf",
    "dag_bag",
    "dag_bag_class",
    "field_behaviour",
    "form_widgets",
    "in_process_supervisor",
    "mask_secret",
    "secrets_stay_in_process",
]
