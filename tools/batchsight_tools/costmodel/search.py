"""Batch settings for the backends with nothing to host: the cheapest that meet a latency target.

With nothing to start, a batch costs its execution (about twenty state transitions, eight
function calls, the drain's empty long polls) and an image waits for its batch's age trigger.
So the knobs are the gateway's ``batch.max_age_seconds`` (bigger batches amortise the
execution, and make their images wait) and ``results.poll_seconds`` (a shorter poll shows a
result sooner and lists the day's results more often). Each age is simulated once on the
real batching code and state machine (``batch.follow`` is off: with nothing hosted there is
nothing to follow); each poll interval is then a cheap replay of the result pull.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from batchsight_tools.costmodel.backends import FUNCTION, BackendPreset
from batchsight_tools.costmodel.deployment import Deployment, serverless_deployment
from batchsight_tools.costmodel.edge import EdgeBatching
from batchsight_tools.costmodel.images import Images
from batchsight_tools.costmodel.model import PolicyResult
from batchsight_tools.costmodel.pipeline import CloudSettings, simulate_ours, template_cloud_settings
from batchsight_tools.costmodel.planner import BudgetTooSmall, peak_count
from batchsight_tools.costmodel.prices import PriceBook
from batchsight_tools.costmodel.result_pull import PullSettings
from batchsight_tools.costmodel.rows import Row, simulated_row
from batchsight_tools.costmodel.stack_shape import StackShape, template_shape

AGES: tuple[float, ...] = (1, 2, 3, 5, 8, 13, 20, 30, 45, 60, 90, 120, 180, 300, 450, 600, 900, 1200, 1800,
                           2400, 3000, 3300, 3600, 5400, 7200)
POLLS = (10.0, 5.0, 2.0)
FUNCTION_MEMORIES = (1769, 1024, 512)  # DrainMemorySize tried for the function backend: one vCPU and less
INTERVAL_SECONDS = 86_400.0  # the age trigger decides; the interval is kept out of the way


@dataclass(frozen=True)
class Target:
    """Every image within ``max_seconds``, and half of them within ``p50_seconds`` when given."""

    max_seconds: float
    p50_seconds: float | None = None

    def met(self, row: Row) -> bool:
        worst, median = row.max_latency, row.latency(50)
        if worst is None or median is None or len(row.latencies) < row.images:
            return False
        return worst <= self.max_seconds and (self.p50_seconds is None or median <= self.p50_seconds)

    def describe(self) -> str:
        text = f"every image within {_duration(self.max_seconds)}"
        return text + (f", half within {_duration(self.p50_seconds)}" if self.p50_seconds else "")


def _duration(seconds: float) -> str:
    return f"{seconds / 60:g} min" if seconds >= 120 else f"{seconds:g} s"


@dataclass
class Searcher:
    """Simulates a serverless backend on a trace at the ages asked for, once each."""

    arrivals: Sequence[float]
    preset: BackendPreset
    images: Images
    base: CloudSettings = field(default_factory=template_cloud_settings)
    shape: StackShape = field(default_factory=template_shape)
    book: PriceBook | None = None
    drain_cold_seconds: float | None = None  # a cold drain function, when not the preset's
    results: PullSettings = field(default_factory=PullSettings)  # pushed, or listed (each poll of POLLS tried)
    _runs: dict[tuple[float, int], tuple[Deployment, PolicyResult]] = field(default_factory=dict)

    def batching(self, age: float) -> EdgeBatching:
        """The age trigger decides; the size trigger stays above the busiest batch of that age."""
        peak = peak_count(self.arrivals, age) if self.arrivals else 0
        return EdgeBatching(max_age_seconds=float(age), interval_seconds=INTERVAL_SECONDS,
                            max_images=max(100, 50 * math.ceil(1.25 * peak / 50)), follow=False)

    def row(self, age: float, poll: float = POLLS[0], memory_mb: int | None = None) -> Row:
        """The deployment with this batch age, result poll and drain memory, simulated and charged."""
        memory = int(memory_mb or self.preset.drain_memory_mb)
        shape = self.shape.with_drain_memory(memory)
        if (age, memory) not in self._runs:
            deployment, service = serverless_deployment(self.preset, self.images, self.batching(age), self.base,
                                                        memory_mb=memory)
            result = simulate_ours(self.arrivals, deployment.policy, service, backend=self.preset, images=self.images,
                                   shape=shape, drain_cold_seconds=self.drain_cold_seconds)
            self._runs[age, memory] = deployment, result
        deployment, result = self._runs[age, memory]
        deployment, _ = serverless_deployment(self.preset, self.images, deployment.policy.batching, self.base,
                                              results=replace(self.results, poll_seconds=poll), memory_mb=memory)
        return simulated_row(result, self.arrivals, backend=self.preset, policy=f"batchsight, age {age:g} s",
                             images=self.images, results=deployment.policy.results, stack=True, book=self.book,
                             shape=shape, deployment=deployment)

    def cheapest_at(self, age: float, target: Target, memory_mb: int | None = None) -> Row | None:
        rows = [row for row in (self.row(age, poll, memory_mb) for poll in POLLS) if target.met(row)]
        return min(rows, key=lambda r: r.cost_per_day) if rows else None

    def best(self, target: Target) -> Row:
        """The cheapest settings that meet the target.

        Latency grows with the age, so the largest age that meets the target is found: the
        largest of all first (a loose target; the quickest to simulate), else by bisection. When
        that age needed a shorter result poll than the default (a dearer listing), smaller ages
        are tried down to the first that the default poll serves (below it, more executions
        only cost more); then, for the function backend, smaller drains (less than a vCPU
        judges slower, but the drain's empty long polls cost less).
        """
        ages = [a for a in AGES if a < target.max_seconds]
        last = len(ages) - 1
        if last >= 0 and self.cheapest_at(ages[last], target) is not None:
            low = last
        else:
            low, high = -1, last - 1  # ages[low] meets the target (-1: none known), ages[high + 1:] do not
            while low < high:
                middle = (low + high + 1) // 2
                if self.cheapest_at(ages[middle], target) is not None:
                    low = middle
                else:
                    high = middle - 1
        if low < 0:
            raise BudgetTooSmall(f"{self.preset.name}: even a {AGES[0]:g}-second batch age misses the target "
                                 f"({target.describe()})")
        rows = []
        for age in reversed(ages[:low + 1]):  # down to the first age the default poll serves
            row = self.cheapest_at(age, target)
            if row is not None:
                rows.append(row)
                if row.deployment is not None and row.deployment.policy.results.poll_seconds >= POLLS[0]:
                    break
        best = min(rows, key=lambda r: r.cost_per_day)
        if self.preset.kind == FUNCTION:
            assert best.deployment is not None
            chosen = best.deployment.policy.batching.max_age_seconds
            rows = [row for m in FUNCTION_MEMORIES if m < self.preset.drain_memory_mb
                    if (row := self.cheapest_at(chosen, target, m)) is not None]
            best = min([best, *rows], key=lambda r: r.cost_per_day)
        return best
