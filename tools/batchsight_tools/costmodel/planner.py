"""Settings for a latency budget: what a user would configure, checked by simulation.

The oldest image of a batch waits for the age trigger, the upload, the slowest model start,
one readiness poll, and (SQS does not keep order) the whole batch's drain. The age trigger
is what is left of the budget after the others, so the edge holds images as long as it can.
"""
from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass, replace

from batchsight_tools.costmodel.backends import PRESETS, BackendPreset
from batchsight_tools.costmodel.edge import DEFAULT_UPLINK, EdgeBatching, Uplink
from batchsight_tools.costmodel.images import DEFAULT_IMAGES, Images
from batchsight_tools.costmodel.model import ModelService, PolicyResult
from batchsight_tools.costmodel.pipeline import CloudSettings, OurPolicy, simulate_ours, \
    template_cloud_settings, worker_rate
from batchsight_tools.costmodel.stack_shape import template_shape

POLL_SECONDS = 15  # 4 state transitions a poll are cheaper than 7.5 s of hosting on average
SAFETY_SECONDS = 60.0  # Step Functions and Lambda latencies, clock skew between gateway and cloud
TASKS_BEFORE_DRAIN = 8  # CheckWork, AcquireLock, StartModel, CheckHosting, RenewLock, ...
INTERVAL_SECONDS = 86_400.0  # interval is measured from the last cut: keep it out of the way
MAX_REFINEMENTS = 4


class BudgetTooSmall(ValueError):
    """The budget does not cover a model start: only an always-on model can meet it."""


@dataclass(frozen=True)
class Plan:
    policy: OurPolicy
    budget_seconds: float
    result: PolicyResult

    @property
    def meets_budget(self) -> bool:
        return self.result.max_latency <= self.budget_seconds + 1e-6


def cloud_settings(service: ModelService, base: CloudSettings | None = None) -> CloudSettings:
    """Poll often, time out well after the slowest start, and hold the lock through a start."""
    base = base or template_cloud_settings()
    timeout = 60 * math.ceil(max(1.5 * service.start_high_seconds, service.start_high_seconds + 300) / 60)
    lease = 60 * math.ceil((timeout + 2 * POLL_SECONDS + 60) / 60)
    concurrency = max(base.detect_concurrency,
                      math.ceil(service.detect_tps / base.drain_workers * service.detect_latency_seconds))
    return replace(base, poll_seconds=POLL_SECONDS, start_timeout_seconds=timeout,
                   lock_lease_seconds=max(base.lock_lease_seconds, lease),
                   detect_concurrency=min(32, concurrency))


def drain_rate(cloud: CloudSettings, service: ModelService) -> float:
    return cloud.drain_workers * worker_rate(cloud, service)


def peak_count(arrivals: Sequence[float], window: float) -> int:
    """The most images that arrive within any ``window`` seconds."""
    best = 0
    for i, t in enumerate(arrivals):
        best = max(best, bisect_right(arrivals, t + window, lo=i) - i)
    return best


def max_age(budget: float, service: ModelService, cloud: CloudSettings, uplink: Uplink,
            max_images: int) -> float:
    overhead = (uplink.submit_seconds(max_images) + service.start_high_seconds + cloud.poll_seconds
                + TASKS_BEFORE_DRAIN * cloud.task_seconds + max_images / drain_rate(cloud, service)
                + SAFETY_SECONDS)
    return budget - overhead


def edge_batching(arrivals: Sequence[float], budget: float, service: ModelService,
                  cloud: CloudSettings, uplink: Uplink) -> EdgeBatching:
    """The age trigger takes what the budget leaves; the size trigger stays above a peak batch."""
    images = 500
    for _ in range(3):  # the batch size and the age depend on each other; this settles quickly
        age = max_age(budget, service, cloud, uplink, images)
        if age < 60:
            raise BudgetTooSmall(
                f"a {budget / 60:.0f}-minute budget leaves {max(age, 0) / 60:.1f} minutes to collect "
                f"images after a start of up to {service.start_high_seconds / 60:.0f} minutes: keep the "
                "model always on, or use a backend that starts faster")
        peak = peak_count(arrivals, age) if arrivals else 0
        images = max(100, 50 * math.ceil(1.25 * peak / 50))
    return EdgeBatching(max_age_seconds=float(math.floor(age)), interval_seconds=INTERVAL_SECONDS,
                        max_images=images)


def suggest(arrivals: Sequence[float], *, budget_seconds: float, service: ModelService,
            uplink: Uplink = DEFAULT_UPLINK, base: CloudSettings | None = None,
            backend: BackendPreset = PRESETS["sagemaker"], images: Images = DEFAULT_IMAGES) -> Plan:
    """Settings for the budget, simulated on the trace and tightened until the budget holds.

    ``backend`` (a hosted one) decides what the calls are charged, with its drain memory.
    """
    cloud = cloud_settings(service, base)
    batching = edge_batching(arrivals, budget_seconds, service, cloud, uplink)
    policy = OurPolicy(batching=batching, cloud=cloud, uplink=uplink)
    shape = template_shape(backend.name).with_drain_memory(backend.drain_memory_mb)

    def simulate(policy: OurPolicy) -> PolicyResult:
        return simulate_ours(arrivals, policy, service, backend=backend, images=images, shape=shape)

    result = simulate(policy)
    for _ in range(MAX_REFINEMENTS):
        over = result.max_latency - budget_seconds
        if over <= 0:
            break
        age = batching.max_age_seconds - math.ceil(over) - 30
        if age < 60:
            break
        batching = replace(batching, max_age_seconds=float(age))
        policy = replace(policy, batching=batching)
        result = simulate(policy)
    return Plan(policy, budget_seconds, result)
