"""Billing: each hosted interval is charged per started minute, per inference unit (or instance)."""
from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

Interval = tuple[float, float]


@dataclass(frozen=True)
class Billing:
    price_per_unit_hour: float = 4.0  # USD; Lookout for Vision charged 4 USD per inference-unit hour
    units: int = 1                    # MinInferenceUnits, or endpoint instances
    granularity_seconds: float = 60.0  # per started minute

    def billed_seconds(self, intervals: Iterable[Interval]) -> float:
        """Per-unit billed time: every interval rounded up to the granularity."""
        g = self.granularity_seconds
        return sum(math.ceil(round((stop - start) / g, 9)) * g
                   for start, stop in intervals if stop > start)

    def model_hours(self, intervals: Iterable[Interval]) -> float:
        """Billed inference-unit (instance) hours."""
        return self.billed_seconds(intervals) * self.units / 3600.0

    def cost(self, intervals: Iterable[Interval]) -> float:
        return self.model_hours(intervals) * self.price_per_unit_hour


DEFAULT_BILLING = Billing()  # a default argument's value, made once (Billing is frozen)


def merge(intervals: Iterable[Interval]) -> list[Interval]:
    """One model is hosted at a time: overlapping or touching intervals are one interval."""
    merged: list[list[float]] = []
    for start, stop in sorted(intervals):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], stop)
        else:
            merged.append([start, stop])
    return [(a, b) for a, b in merged]
