"""Warm and cold: whether a Lambda function (or a serverless endpoint) has an idle environment.

An invocation takes an environment that finished within the last ``keep_seconds`` or starts a
new one cold; the cold start is both latency and, since Lambda bills the INIT phase, cost.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from batchsight_tools.costmodel.backends import WARM_SECONDS


@dataclass
class WarmPool:
    keep_seconds: float = WARM_SECONDS
    _free_at: list[float] = field(default_factory=list)  # when each idle environment finished
    cold_starts: int = 0

    def take(self, now: float, count: int = 1) -> int:
        """Take ``count`` environments at ``now``; how many of them start cold."""
        self._free_at = [t for t in self._free_at if now - self.keep_seconds <= t]
        warm = sorted(t for t in self._free_at if t <= now)[-count:] if count else []
        for t in warm:
            self._free_at.remove(t)
        cold = count - len(warm)
        self.cold_starts += cold
        return cold

    def give_back(self, done_at: float, count: int = 1) -> None:
        self._free_at.extend([done_at] * count)
