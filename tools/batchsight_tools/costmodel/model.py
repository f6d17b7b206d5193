"""What the simulation is told about the model service, and what it reports per policy."""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from batchsight_tools.costmodel.billing import Billing, Interval
from batchsight_tools.costmodel.usage import Usage

MINUTE = 60.0


@dataclass(frozen=True)
class ModelService:
    """The hosted model's physics: how long a start takes, how fast it answers.

    Lookout for Vision documented 10 to 20 minutes to start a model; SageMaker endpoints take
    several minutes. ``detect_tps`` is the service's rate cap shared by all callers.
    """

    start_minutes: tuple[float, float] = (10.0, 20.0)
    detect_latency_seconds: float = 0.4
    detect_tps: float = 10.0
    seed: int = 7
    fails: bool = False  # every start ends in FAILED (hosting failure path)

    @property
    def start_low_seconds(self) -> float:
        return self.start_minutes[0] * MINUTE

    @property
    def start_high_seconds(self) -> float:
        return self.start_minutes[1] * MINUTE

    @property
    def start_mean_seconds(self) -> float:
        return (self.start_low_seconds + self.start_high_seconds) / 2.0

    def throughput(self, concurrency: float) -> float:
        """Images per second with ``concurrency`` calls in flight, under the rate cap."""
        return min(self.detect_tps, concurrency / self.detect_latency_seconds)


DEFAULT_SERVICE = ModelService()  # a default argument's value, made once (ModelService is frozen)


@dataclass
class PolicyResult:
    name: str
    intervals: list[Interval]  # hosted (billed) intervals, start call to stop
    latencies: list[float]  # per image, drop to result document
    horizon: float
    starts: int = 0
    executions: dict[str, int] = field(default_factory=dict)  # end state -> count
    notes: list[str] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)  # every charge but the hosting (intervals)
    metric_hours: set[tuple[int, str]] = field(default_factory=set)  # custom metrics published
    submitted: dict[int, float] = field(default_factory=dict)  # image -> its batch's StartExecution
    stored: dict[int, float] = field(default_factory=dict)  # image -> its result document stored

    def billed_hours(self, billing: Billing) -> float:
        return billing.model_hours(self.intervals)

    def cost(self, billing: Billing) -> float:
        return billing.cost(self.intervals)

    def hosted_seconds(self) -> float:
        return sum(b - a for a, b in self.intervals)

    def percentile(self, q: float) -> float:
        return percentile(self.latencies, q)

    @property
    def max_latency(self) -> float:
        return max(self.latencies) if self.latencies else 0.0


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100); 0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100.0 * len(ordered)))
    return ordered[rank - 1]
