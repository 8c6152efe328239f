"""What every figure reports: rows of a table, each a measured value against its goal."""

from __future__ import annotations

import statistics
from dataclasses import dataclass


@dataclass(frozen=True)
class Row:
    figure: str
    measure: str
    value: str
    goal: str = ""
    met: bool | None = None  # None: informational, no goal
    rate: float | None = None  # calls per second this measurement asked of the emulator (headroom check)

    @property
    def verdict(self) -> str:
        return "" if self.met is None else ("met" if self.met else "MISSED")


def percentile(values: list[float], fraction: float) -> float:
    """The ``fraction`` quantile (0..1) by linear interpolation; 0.0 for no values."""
    if not values:
        return 0.0
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=1000, method="inclusive")[round(fraction * 1000) - 1]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms"
