"""The site run as a table per model, and the checks that make its exit status.

Latency is from a gateway's enqueue of an image to its result arriving on that gateway's own
queue. The checks are the issue's: every image exactly one result, at its own gateway, judged
by its own model; no result at another gateway.
"""
from __future__ import annotations

import statistics
from dataclasses import dataclass

from batchsight_tools.bench.site.run import ModelRun, SiteConfig, SiteOutcome


@dataclass(frozen=True)
class Checks:
    missing: int
    duplicates: int
    foreign: int
    wrong_model: int

    def all(self) -> bool:
        return not (self.missing or self.duplicates or self.foreign or self.wrong_model)


def checks(outcome: SiteOutcome) -> Checks:
    gateways = [g for entry in outcome.models for g in entry.gateways]
    return Checks(missing=sum(g.missing() for g in gateways), duplicates=sum(g.seen.duplicates for g in gateways),
                  foreign=sum(len(g.seen.foreign) for g in gateways),
                  wrong_model=sum(g.seen.wrong_model for g in gateways))


def table(outcome: SiteOutcome) -> list[str]:
    lines = ["| model route | gateways | images | results | gateway executions | model starts | hosted s "
             "| latency p50 s | p95 s | max s | wrong model | at another gateway |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for entry in outcome.models:
        lines.append(_row(entry))
    return lines


def _row(entry: ModelRun) -> str:
    latencies = sorted(g.seen.received[i] - g.seen.sent[i] for g in entry.gateways for i in g.seen.received)
    images = sum(len(g.seen.sent) for g in entry.gateways)
    p50 = statistics.median(latencies) if latencies else float("nan")
    p95 = latencies[min(len(latencies) - 1, int(0.95 * len(latencies)))] if latencies else float("nan")
    peak = latencies[-1] if latencies else float("nan")
    return (f"| {entry.route} ({entry.model_name}) | {len(entry.gateways)} | {images} | {len(latencies)} "
            f"| {sum(g.seen.executions for g in entry.gateways)} | {entry.starts} | {entry.hosted_seconds:.1f} "
            f"| {p50:.1f} | {p95:.1f} | {peak:.1f} | {sum(g.seen.wrong_model for g in entry.gateways)} "
            f"| {sum(len(g.seen.foreign) for g in entry.gateways)} |")


def summary(cfg: SiteConfig, outcome: SiteOutcome) -> list[str]:
    found = checks(outcome)
    verdict = "every check holds" if found.all() else "CHECKS FAILED"
    lines = [f"{cfg.gateways} gateways on {cfg.models} models, {outcome.executions} executions in all (with "
             f"successors), {outcome.seconds:.0f} s from the first batch to the last result: {verdict}",
             f"- images without a result: {found.missing} (must be 0)",
             f"- results delivered twice: {found.duplicates} (must be 0)",
             f"- results at another gateway: {found.foreign} (must be 0)",
             f"- judged by another model: {found.wrong_model} (must be 0)"]
    heard: dict[str, int] = {}
    for entry in outcome.models:
        for gateway in entry.gateways:
            for route, count in gateway.seen.notices.items():
                heard[route] = heard.get(route, 0) + count
    if heard:
        lines.append("- hosting notices heard, by the route they name: "
                     + ", ".join(f"{route} {count}" for route, count in sorted(heard.items()))
                     + " (a gateway follows only its own route's)")
    return lines
