"""The event ConnectionTrigger fires and ConnectionSensor reads: its status names and its fields.

No imports: the sensor reads it at DAG-parse time, the trigger in the triggerer.
"""

from __future__ import annotations

from typing import Any, Final

SUCCESS: Final = "success"  # a matching connection was listed: it is the event's "connection"
TIMEOUT: Final = "timeout"  # the deadline passed first (the sensor raises AirflowSensorTimeout)
ERROR: Final = "error"  # a failure that waiting cannot fix (bad criteria, a 4xx, a bad certificate)


def payload(status: str, message: str, connection: dict[str, Any] | None = None) -> dict[str, Any]:
    """The trigger event's payload: ``{"status": ..., "connection": dict | None, "message": str}``."""
    return {"status": status, "connection": connection, "message": message}
