"""Every difference between the Airflow 3.x versions the provider supports, in one place.

Each name is a plain ``try``/``except ImportError`` import: the new home first (the Task SDK, Airflow
3.1+), then the Airflow 3.0 one. mypy follows the branch the installed Airflow has; the fallback lines
carry the ignores they need there. Once ``airflow.sdk`` is loaded (DAG parsing has loaded it), importing
this module costs well under a millisecond (benchmarks/, figure 5): every module below is loaded by then.
"""

from __future__ import annotations

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


__all__ = [
    "AirflowException",
    "AirflowNotFoundException",
    "AirflowSensorTimeout",
    "BaseHook",
    "amask_secret",
    "conf",
    "mask_secret",
]
