"""A week of a 24/7 line on the virtual clock, with an overload in the middle (issue 20).

The cost model's engine runs the real state machine (the ASL walker) and the functions' own
decisions: CheckWork's plan, overload control (batchsight_pipeline.overload, the units it runs
within MaxScaleUnits) and the hand-over before the history quota (history.estimate, as CheckWork
counts a history it cannot read). It prints what a week without a person must show: executions,
the largest history of one execution against the 25,000-event quota, hand-overs, hosted hours, the
largest backlog, p95 latency before, during and after the overload (its first and second hour, and
when it was back to normal), and the alarms raised.

    python -m batchsight_tools.costmodel.week --per-hour 7200 --detect-tps 3 --max-scale-units 2
"""
from __future__ import annotations

import argparse
import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from batchsight_pipeline import history
from batchsight_tools.costmodel.asl import Outcome
from batchsight_tools.costmodel.model import ModelService
from batchsight_tools.costmodel.pipeline import (Check, OurPolicy, Pipeline, load_definition, simulate_ours,
                                                 template_cloud_settings)
from batchsight_tools.costmodel.trace import HOUR, rate_trace

ALARM_PERIOD = 300.0  # PipelineOverloadedAlarm's period (cloud/template.yaml)
# History events per state entered (Step Functions Standard, as measured under moto; history.py).
EVENTS = {"Task": 5, "Map": 4, "Choice": 2, "Pass": 2, "Wait": 2, "Succeed": 2, "Fail": 2}
EVENTS_PER_ITERATION = 2  # MapIterationStarted and MapIterationSucceeded, around the Task's five
EVENTS_PER_RETRY = 3  # TaskScheduled, TaskStarted, TaskFailed
# Latency is "back to normal" once each 10-minute window's p95 is within NORMAL x the p95 before
# the overload (the goal: within an hour of its end); windows looked at: the next 6 hours.
NORMAL = 1.5
WINDOW = 600.0
RECOVERY_WINDOWS = 36


@dataclass(frozen=True)
class Overload:
    """Arrivals ``factor`` times the base rate for ``hours`` from ``start_hour`` of the trace."""

    start_hour: float
    hours: float = 3.0
    factor: float = 3.0

    @property
    def start(self) -> float:
        return self.start_hour * HOUR

    @property
    def end(self) -> float:
        return self.start + self.hours * HOUR


@dataclass(frozen=True)
class WeekFigures:
    images: int
    lost: int
    executions: int
    hand_overs: int
    largest_history: int
    hosted_hours: float
    largest_backlog: int
    most_units: int
    alarms: int  # times the pipeline became saturated: PipelineOverloadedAlarm raised
    p95_before: float
    p95_during: float
    p95_first_hour_after: float  # images arriving in the first hour after the overload ended
    p95_hour_after: float  # images arriving in the second hour after the overload ended
    recovered_minutes: float  # after the overload's end, until every 10-minute p95 is back to normal

    def lines(self) -> list[str]:
        quota = history.QUOTA
        return [f"images {self.images:,}, lost {self.lost}",
                f"executions {self.executions:,}, hand-overs {self.hand_overs}, largest history "
                f"{self.largest_history:,} events ({100 * self.largest_history / quota:.0f}% of {quota:,})",
                f"hosted {self.hosted_hours:.1f} h, largest backlog {self.largest_backlog:,} images, "
                f"most units {self.most_units}, alarms raised {self.alarms}",
                f"p95 latency: {self.p95_before:.0f} s before the overload, {self.p95_during:.0f} s during, "
                f"{self.p95_first_hour_after:.0f} s in the first hour after it, {self.p95_hour_after:.0f} s in "
                f"the second",
                f"back to normal (every 10-minute p95 within {NORMAL:g} x the p95 before) "
                f"{self.recovered_minutes:.0f} min after the overload ended"]


def overload_trace(per_hour: float, overload: Overload, *, days: int = 7, seed: int = 7) -> list[float]:
    """Poisson arrivals around the clock, plus the overload's extra arrivals in its window."""
    base = rate_trace(per_hour, days=days, seed=seed)
    if overload.factor <= 1:
        return base
    extra = rate_trace(per_hour * (overload.factor - 1), days=days, seed=seed + 1)
    return sorted(base + [t for t in extra if overload.start <= t < overload.end])


def history_events(outcome: Outcome, states: dict[str, Any]) -> int:
    """An execution's history length from the states it entered (2 for its start and end)."""
    entered = sum(EVENTS[states[name]["Type"]] for _, name in outcome.path)
    return 2 + entered + (EVENTS_PER_ITERATION + EVENTS["Task"]) * outcome.map_iterations \
        + EVENTS_PER_RETRY * outcome.retries


def alarms_raised(checks: Sequence[Check]) -> int:
    """PipelineOverloadedAlarm as CloudWatch evaluates it: the maximum of ``Overloaded`` (emitted by
    the checks while draining) per 5-minute period, periods without data ignored; raised at each
    breaching period whose previous period with data did not breach."""
    periods: dict[int, bool] = {}
    for check in checks:
        if check.draining:
            period = int(check.at // ALARM_PERIOD)
            periods[period] = periods.get(period, False) or check.saturated
    states = [periods[p] for p in sorted(periods)]
    return sum(1 for n, breaching in enumerate(states) if breaching and (n == 0 or not states[n - 1]))


def recovered_after(latency: Callable[[float, float], list[float]], *, end: float, normal: float) -> float:
    """Minutes after ``end`` until latency is normal for good: the end of the last 10-minute window
    (of the next 6 hours) whose p95 is above ``NORMAL`` times ``normal``; 0 if none is. Windows,
    not single images: one image in twenty is above the p95 at any time."""
    late = [n + 1 for n in range(RECOVERY_WINDOWS)
            if p95(latency(end + n * WINDOW, end + (n + 1) * WINDOW)) > NORMAL * normal]
    return max(late, default=0) * WINDOW / 60


def p95(values: Sequence[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(0.95 * len(ordered)) - 1)] if ordered else 0.0


def run_week(*, per_hour: float, service: ModelService, overload: Overload, days: int = 7,
             max_scale_units: int = 2, seed: int = 7) -> WeekFigures:
    """Simulate the days and gather the figures."""
    arrivals = overload_trace(per_hour, overload, days=days, seed=seed)
    cloud = dataclasses.replace(template_cloud_settings(), max_scale_units=max_scale_units)
    seen: list[Pipeline] = []
    result = simulate_ours(arrivals, OurPolicy(cloud=cloud), service, watch=seen.append)
    pipeline, states = seen[0], load_definition()["States"]
    done = result.stored or {}

    def latencies(start: float, end: float) -> list[float]:
        return [done[i] - t for i, t in enumerate(arrivals) if start <= t < end and i in done]

    checks = pipeline.checks
    return WeekFigures(
        images=len(arrivals), lost=len(arrivals) - len(done), executions=len(pipeline.outcomes),
        hand_overs=sum(1 for o in pipeline.outcomes if o.end_state == "HandedOver"),
        largest_history=max(history_events(o, states) for o in pipeline.outcomes),
        hosted_hours=sum(end - start for start, end in result.intervals) / HOUR,
        largest_backlog=max((c.backlog for c in checks), default=0),
        most_units=max((c.units for c in checks), default=1), alarms=alarms_raised(checks),
        p95_before=p95(latencies(0.0, overload.start)), p95_during=p95(latencies(overload.start, overload.end)),
        p95_first_hour_after=p95(latencies(overload.end, overload.end + HOUR)),
        p95_hour_after=p95(latencies(overload.end + HOUR, overload.end + 2 * HOUR)),
        recovered_minutes=recovered_after(latencies, end=overload.end, normal=p95(latencies(0.0, overload.start))))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m batchsight_tools.costmodel.week",
                                     description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--per-hour", type=float, default=7200.0, help="base arrivals per hour (default 7200)")
    parser.add_argument("--detect-tps", type=float, default=3.0,
                        help="one unit's detect rate (DetectTps, default 3)")
    parser.add_argument("--max-scale-units", type=int, default=2, help="MaxScaleUnits (default 2)")
    parser.add_argument("--days", type=int, default=7, help="days of the trace (default 7)")
    parser.add_argument("--factor", type=float, default=3.0,
                        help="the overload's arrivals over the base (default 3)")
    args = parser.parse_args(argv)
    if min(args.per_hour, args.detect_tps) <= 0 or min(args.max_scale_units, args.days) < 1 or args.factor < 1:
        parser.error("--per-hour and --detect-tps must be above 0, --max-scale-units and --days at least 1, "
                     "--factor at least 1")
    service = ModelService(start_minutes=(4.0, 6.0), detect_latency_seconds=0.1, detect_tps=args.detect_tps)
    overload = Overload(start_hour=args.days * 12.0, factor=args.factor)
    figures = run_week(per_hour=args.per_hour, service=service, overload=overload, days=args.days,
                       max_scale_units=args.max_scale_units)
    print("\n".join(figures.lines()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
