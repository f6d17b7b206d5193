"""The ideal: the least hosted time that still gives every image its result within the budget.

A scheduler that knows every arrival in advance chooses hosting windows. What it cannot know
is how long a particular start will take, so to *guarantee* the budget it must start the
model early enough for the slowest start in the range; it then pays the start it gets. The
windows are chosen for the mean start; each is then charged the same seeded draw as the
policies' start of the same rank (common random numbers), so that a lucky or unlucky run
of starts favours no policy. A window serves a run of consecutive images: it starts as late as that
guarantee allows, drains at the service's full rate cap, and stops the moment the last of
its images is answered. Dynamic programming over runs of images chooses where windows begin
and end; boundaries fall between 30-second bins of arrivals, which costs at most seconds
against an unrestricted schedule. Always-on is a candidate too (a model that never stops
pays no start), so the ideal is never above it.

``ideal_windows(..., plan_start_seconds=mean)`` gives the looser bound of a scheduler that
also knows each start's duration in advance.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from batchsight_tools.costmodel.billing import DEFAULT_BILLING, Billing, merge
from batchsight_tools.costmodel.model import ModelService, PolicyResult
from batchsight_tools.costmodel.services import StartTimes
from batchsight_tools.costmodel.trace import horizon as trace_horizon

BIN_SECONDS = 30.0
MAX_WINDOW_SECONDS = 6 * 3600.0


@dataclass(frozen=True)
class Window:
    start: float  # the start call
    hosted: float  # hosted from here, after a start of ``paid_start_seconds``
    stop: float  # last image answered
    first: int
    last: int


def ideal_windows(arrivals: Sequence[float], *, budget_seconds: float, plan_start_seconds: float,
                  paid_start_seconds: float, rate: float) -> list[Window]:
    """Windows that meet the budget if a start takes up to ``plan_start_seconds``."""
    a = np.asarray(arrivals, dtype=float)
    n = len(a)
    if n == 0:
        return []
    tau = 1.0 / rate
    index = np.arange(n)
    v = a - index * tau
    bins = np.floor(a / BIN_SECONDS)
    firsts = np.flatnonzero(np.r_[True, bins[1:] != bins[:-1]])  # first image of each group
    lasts = np.r_[firsts[1:] - 1, n - 1]
    k = len(firsts)
    best = np.full(k, np.inf)
    parent = np.zeros(k, dtype=int)
    # A window much longer than a start plus the budget is never cheaper than cycling (the
    # model would be up for arrivals it could have batched), unless the budget is below the start.
    span = max(MAX_WINDOW_SECONDS, 4 * (budget_seconds + plan_start_seconds))
    reach = np.searchsorted(a[firsts], a[firsts] + span, side="right")
    if budget_seconds <= plan_start_seconds:
        reach[:] = k
    for p in range(k):
        before = best[p - 1] if p else 0.0
        i = firsts[p]
        q_end = max(int(reach[p]), p + 1)
        ends = lasts[p:q_end]
        j_end = int(ends[-1]) + 1
        low = np.minimum.accumulate(v[i:j_end])[ends - i]
        high = np.maximum.accumulate(v[i:j_end])[ends - i]
        start = budget_seconds + (i - 1) * tau + low - plan_start_seconds
        hosted = start + paid_start_seconds
        stop = np.maximum(hosted + (ends - i + 1) * tau, high + (ends + 1) * tau)
        total = before + stop - start
        better = total < best[p:q_end]
        best[p:q_end][better] = total[better]
        parent[p:q_end][better] = p
    windows: list[Window] = []
    q = k - 1
    while q >= 0:
        p = parent[q]
        i, j = int(firsts[p]), int(lasts[q])
        start = budget_seconds + (i - 1) * tau + float(np.min(v[i:j + 1])) - plan_start_seconds
        hosted = start + paid_start_seconds
        stop = max(hosted + (j - i + 1) * tau, float(np.max(v[i:j + 1])) + (j + 1) * tau)
        windows.append(Window(start, hosted, stop, i, j))
        q = p - 1
    return windows[::-1]


def simulate_ideal(arrivals: Sequence[float], service: ModelService, *, budget_seconds: float,
                   always_on: PolicyResult | None = None, billing: Billing = DEFAULT_BILLING) -> PolicyResult:
    rate = service.detect_tps
    windows = ideal_windows(arrivals, budget_seconds=budget_seconds,
                            plan_start_seconds=service.start_high_seconds,
                            paid_start_seconds=service.start_mean_seconds, rate=rate)
    a = np.asarray(arrivals, dtype=float)
    draws = StartTimes(service.start_low_seconds, service.start_high_seconds, service.seed)
    latencies: list[float] = []
    intervals = []
    tau = 1.0 / rate
    for w in windows:
        hosted = w.start + draws.draw()
        m = np.arange(w.first, w.last + 1)
        v = a[m] - m * tau
        done = np.maximum(hosted + (m - w.first + 1) * tau, np.maximum.accumulate(v) + (m + 1) * tau)
        latencies += (done - a[m]).tolist()
        intervals.append((w.start, float(done[-1])))
    horizon = trace_horizon(arrivals)
    result = PolicyResult("ideal", merge(intervals), latencies, horizon, starts=len(windows))
    if always_on is not None and billing.billed_seconds(always_on.intervals) < billing.billed_seconds(
            result.intervals):
        return PolicyResult("ideal", list(always_on.intervals), list(always_on.latencies), horizon,
                            notes=["always-on is the cheapest schedule for this budget"])
    return result
