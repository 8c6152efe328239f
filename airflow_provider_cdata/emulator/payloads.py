"""JSON from clients, parsed with a bound on nesting.

Python's parser answers a deeply nested document (``[[[[...]]]]``) with a ``RecursionError``, and a
document just under that limit is refused again later by ``json.dumps`` when the request log is shown.
CData's bodies and JWTs are flat: anything nested deeper than :data:`MAX_DEPTH` is refused as bad input.
"""

from __future__ import annotations

import json
from typing import Any

MAX_DEPTH = 32


def loads(raw: str | bytes) -> Any:
    """Parse ``raw`` as JSON; raise ``ValueError`` (with a message for the client) when it is not, or
    when it nests objects and arrays more than :data:`MAX_DEPTH` levels deep."""
    try:
        value = json.loads(raw)
    except RecursionError:
        raise ValueError(f"JSON nested more than {MAX_DEPTH} levels deep") from None
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
        raise ValueError(f"not valid JSON ({exc})") from None
    if _too_deep(value):
        raise ValueError(f"JSON nested more than {MAX_DEPTH} levels deep")
    return value


def _too_deep(value: Any) -> bool:
    """Whether ``value`` nests containers deeper than MAX_DEPTH; iterative, so any depth is safe."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if not isinstance(item, dict | list):
            continue
        if depth > MAX_DEPTH:
            return True
        children = item.values() if isinstance(item, dict) else item
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False
