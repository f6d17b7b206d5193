"""A site, not a line: one trace split over many gateways that share one hosted model.

Each gateway batches its own share with the same settings, so alone each would start the model at
its own batch age: tens of gateways make tens of starts where one line made one. With results
pushed, the pipeline announces every hosting on each gateway's queue (hosting_notice.py), and
every gateway with images waiting sends them at once (``batch.follow``, site-wide). This module
runs the start/stop plan both ways for a few site sizes against the ideal for the whole trace,
so the bench can show what the notice buys.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

from batchsight_tools.costmodel.compare import GOAL_VS_IDEAL, Comparison
from batchsight_tools.costmodel.model import ModelService, PolicyResult
from batchsight_tools.costmodel.pipeline import simulate_ours
from batchsight_tools.costmodel.report import duration, markdown
from batchsight_tools.costmodel.result_pull import PullSettings
from batchsight_tools.costmodel.stack_shape import template_shape

SITE_SIZES = (1, 10, 40)


@dataclass(frozen=True)
class SiteRun:
    gateways: int
    announced: bool  # results pushed, and with them the hosting notices
    result: PolicyResult


def site_runs(arrivals: Sequence[float], comparison: Comparison, service: ModelService,
              sizes: Sequence[int] = SITE_SIZES) -> list[SiteRun]:
    """The comparison's start/stop plan on ``arrivals`` split over each number of gateways, with the
    hosting announced (results pushed) and without (results listed: each gateway follows only its own)."""
    backend = comparison.backend
    shape = template_shape(backend.name).with_drain_memory(backend.drain_memory_mb)
    runs = []
    for gateways in sizes:
        for announced in (True, False):
            policy = dataclasses.replace(comparison.policy, results=PullSettings(push=announced))
            result = simulate_ours(arrivals, policy, service, backend=backend, images=comparison.images,
                                   shape=shape, gateways=gateways)
            runs.append(SiteRun(gateways, announced, result))
    return runs


def site_table(runs: Sequence[SiteRun], comparison: Comparison) -> list[str]:
    ideal = comparison.hours("ideal")
    lines = []
    for run in runs:
        hours = run.result.billed_hours(comparison.billing)
        lines.append([f"{run.gateways}", "announced (pushed)" if run.announced else "own results only (listed)",
                      f"{hours:.2f}", f"{hours / ideal:.2f}", f"{run.result.starts}",
                      f"{sum(run.result.executions.values()):,}", duration(run.result.percentile(50)),
                      duration(run.result.percentile(95))])
    header = ["gateways", "hosting", "model-hours", "x ideal", "starts", "executions", "p50", "p95"]
    return markdown(header, lines, right=[0, 2, 3, 4, 5, 6, 7])


def site_goal_line(runs: Sequence[SiteRun], comparison: Comparison) -> str:
    largest = max(runs, key=lambda r: (r.gateways, r.announced))
    ratio = largest.result.billed_hours(comparison.billing) / comparison.hours("ideal")
    verdict = "met" if ratio <= GOAL_VS_IDEAL else "NOT MET"
    return (f"- start/stop with {largest.gateways} gateways sharing the model, hosting announced: "
            f"{ratio:.2f}x the ideal's model-hours (goal <= {GOAL_VS_IDEAL}: {verdict})")
