"""Every difference between the Airflow 3.x versions the provider supports, in one place.

Each name is a plain ``try``/``except ImportError`` import: the new home first (the Task SDK, Airflow
3.1+), then the Airflow 3.0 one. mypy follows the branch the installed Airflow has; the fallback lines
carry the ignores they need there. Once ``airflow.sdk`` is loaded (DAG parsing has loaded it), importing
this module costs well under a millisecond (benchmarks/, figure 5): every module below is loaded by then.
"""

from __future__ import annotations

import contextlib
import sys
import threading
from collections.abc import Iterator
from typing import Any

try:  # Airflow 3.1+: hooks come from the Task SDK
    from airflow.sdk import BaseHook
except ImportError:  # pragma: no cover - Airflow 3.0
    from airflow.hooks.base import BaseHook  # type: ignore[attr-defined,no-redef]

try:  # where Airflow 3.1+ defines it; airflow.exceptions re-exports it
    from airflow.sdk.exceptions import AirflowException
except ImportError:  # pragma: no cover - Airflow 3.0
    from airflow.exceptions import AirflowException  # type: ignore[attr-defined]

try:
    from airflow.sdk.exceptions import AirflowNotFoundException
except ImportError:  # pragma: no cover - Airflow 3.0
    from airflow.exceptions import AirflowNotFoundException  # type: ignore[attr-defined]

try:
    from airflow.sdk.exceptions import AirflowSensorTimeout
except ImportError:  # pragma: no cover - Airflow 3.0 (there a deprecated alias, typed Any)
    from airflow.exceptions import AirflowSensorTimeout  # type: ignore[no-redef]

try:
    from airflow.sdk.configuration import conf
except ImportError:  # pragma: no cover - Airflow 3.0
    from airflow.configuration import conf

try:  # Airflow's secrets masker, wherever this Airflow 3.x keeps it
    from airflow.sdk.log import mask_secret
except ImportError:  # pragma: no cover - older Airflow 3.x
    try:
        from airflow.sdk.execution_time.secrets_masker import mask_secret  # type: ignore[no-redef]
    except ImportError:
        from airflow.utils.log.secrets_masker import mask_secret  # type: ignore[import-not-found,no-redef]

try:  # Airflow 3.2+: in a trigger it tells the supervisor without blocking the event loop
    from airflow.sdk.log import amask_secret
except ImportError:  # pragma: no cover - Airflow before 3.2

    async def amask_secret(secret: str) -> None:  # type: ignore[misc]
        mask_secret(secret)


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


__all__ = [
    "AirflowException",
    "AirflowNotFoundException",
    "AirflowSensorTimeout",
    "BaseHook",
    "amask_secret",
    "conf",
    "in_process_supervisor",
    "mask_secret",
    "secrets_stay_in_process",
]
