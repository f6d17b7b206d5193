"""The overload run as printed: a table over time, then the summary and its checks.

Every figure is read from the run itself: arrivals from what the feeder sent, results from the
final bucket, the backlog from the image queue, units and ``Overloaded`` from the functions' own
metrics, and the gateway's column from its housekeeping. The baseline is the same run's
configuration: what the ceiling's units should drain (units x DetectTps) and the rate asked of
the line, so the ratios say how close the real pipeline came to them.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from batchsight_tools.bench.overload.metrics import LoadMetric
from batchsight_tools.bench.overload.run import Outcome, OverloadConfig, Sample

SATURATED = "cloud pipeline saturated"


@dataclass(frozen=True)
class Checks:
    """What the issue asks this run to show; the command's exit status is 0 only if all hold."""

    bounded: bool
    alarm: bool
    backpressure: bool
    none_lost: bool
    one_each: bool
    stopped: bool

    def all(self) -> bool:
        return all(vars(self).values())


def table(cfg: OverloadConfig, outcome: Outcome, loads: list[LoadMetric], every: float) -> list[str]:
    """One row per ``every`` seconds: what came, what was done, what waited, what was said."""
    rows = ["| minute | arrivals | results | backlog (end) | backlog (max) | units | Overloaded | gateway said |",
            "|---:|---:|---:|---:|---:|---:|---:|---|"]
    before = Sample(0.0, 0, 0, 0, 0, "")
    end = outcome.samples[-1].at if outcome.samples else 0.0
    edge = every
    while before.at < end:
        part = [s for s in outcome.samples if before.at < s.at <= edge]
        if part:
            checks = [m for m in loads if before.at < m.at - outcome.started_at <= edge]
            units = _units_at(loads, outcome.started_at + edge)
            said = "backpressure" if any(SATURATED in s.gateway_alarm for s in part) else "ok"
            digits = 1 if every >= 60 else 2
            last = part[-1]
            overloaded = int(any(m.overloaded for m in checks)) if checks else "-"
            rows.append(f"| {edge / 60:.{digits}f} | {last.sent - before.sent} | {last.results - before.results} "
                        f"| {last.backlog} | {max(s.backlog for s in part)} | {units or '-'} | {overloaded} "
                        f"| {said} |")
            before = part[-1]
        edge += every
    return rows


def summary(cfg: OverloadConfig, outcome: Outcome, loads: list[LoadMetric]) -> tuple[list[str], Checks]:
    """The figures the issue asks for, each with its baseline, and the checks."""
    sent, samples = outcome.feed.sent, outcome.samples
    results = outcome.result_ids
    lost = len(set(sent) - set(results))
    max_backlog = max((s.backlog for s in samples), default=0)
    fed = outcome.feed.times[-1] - outcome.started_at if outcome.feed.times else 0.0
    first_full = _first(loads, outcome, lambda m: m.units >= cfg.units)
    first_alarm = _first(loads, outcome, lambda m: m.overloaded)
    told = next((s.at for s in samples if SATURATED in s.gateway_alarm), None)
    capacity = cfg.units * cfg.unit_tps
    drain = _drain_rate(samples, start=first_full, end=fed)
    at_feed_end = next((s for s in samples if s.at >= fed), samples[-1] if samples else None)
    clear = (samples[-1].at - fed) if samples else 0.0
    lines = [
        f"sent {len(sent)} images in {fed / 60:.1f} min: {len(sent) / fed if fed else 0:.2f}/s "
        f"against the {cfg.rate:g}/s asked ({len(sent) / fed / cfg.rate if fed else 0:.2f} of it)",
        f"capacity: {cfg.units} units x DetectTps {cfg.unit_tps:g}/s = {capacity:g}/s; "
        f"arrivals / capacity = {cfg.rate / capacity:.2f}",
        f"drain at the ceiling (from {_when(first_full)} to the feed's end): {drain:.2f}/s, "
        f"{drain / capacity:.2f} of the capacity",
        f"largest backlog {max_backlog} images: {max_backlog / max(1, len(sent)):.1%} of everything sent; "
        f"{at_feed_end.backlog if at_feed_end else 0} waiting when the feed ended, cleared {clear / 60:.1f} min later",
        f"scaled to {cfg.units} units at {_when(first_full)}; Overloaded = 1 (PipelineOverloadedAlarm's metric) "
        f"first at {_when(first_alarm)}, in {sum(m.overloaded for m in loads)} of {len(loads)} checks",
        f"the gateway's housekeeping said 'cloud pipeline saturated' first at {_when(told)}, "
        f"in {sum(SATURATED in s.gateway_alarm for s in samples)} of {len(samples)} looks; "
        f"looks that re-sent images: {sum('re-submitted' in s.gateway_alarm for s in samples)}",
        f"images lost: {lost}; results: {len(results)} for {len(sent)} images "
        f"({outcome.rewritten} written twice); dead letters: {samples[-1].dead_letters if samples else 0}",
        f"executions: {outcome.executions}; model {outcome.hosting_state} at the end, hosted "
        f"{outcome.hosted_seconds / 60:.1f} min of the {samples[-1].at / 60 if samples else 0:.1f} min run",
    ]
    checks = Checks(bounded=max_backlog < len(sent), alarm=first_alarm is not None, backpressure=told is not None,
                    none_lost=lost == 0, one_each=sorted(results) == sorted(sent) and not outcome.rewritten,
                    stopped=outcome.hosting_state == "STOPPED")
    lines.append("checks: " + ", ".join(f"{k} {'yes' if v else 'NO'}" for k, v in vars(checks).items()))
    return lines, checks


def _drain_rate(samples: list[Sample], *, start: float | None, end: float) -> float:
    """Results per second between ``start`` and ``end`` (seconds since the feed began)."""
    if start is None:
        return 0.0
    window = [s for s in samples if start <= s.at <= end]
    if len(window) < 2 or window[-1].at <= window[0].at:
        return 0.0
    return (window[-1].results - window[0].results) / (window[-1].at - window[0].at)


def _first(loads: list[LoadMetric], outcome: Outcome, test: Callable[[LoadMetric], bool]) -> float | None:
    """Seconds since the feed began of the first check for which ``test`` holds."""
    hit = next((m for m in loads if test(m)), None)
    return hit.at - outcome.started_at if hit else None


def _units_at(loads: list[LoadMetric], when: float) -> int | None:
    seen = [m.units for m in loads if m.at <= when]
    return seen[-1] if seen else None


def _when(seconds: float | None) -> str:
    return "never" if seconds is None else f"{seconds / 60:.1f} min"
