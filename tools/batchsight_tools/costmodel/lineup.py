"""Every backend and policy on one trace, whole bills side by side: what bench/cost.py prints.

- the hosted backend (sagemaker by default) kept up all day and run on the AWS sample's hourly
  schedule (both with the sample's mechanism), batchsight's start/stop plan for the budget,
  and the ideal start/stop schedule for the budget;
- ``sagemaker-serverless`` and ``lambda`` (nothing to host), each planned for the median
  target (search.py) and for the budget alone;
- the floor (floor.py).
The serverless endpoint is given the lambda rows' batch settings rather than a search of its
own: the same batches side by side, and half the simulations.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from batchsight_tools.costmodel.backends import PRESETS
from batchsight_tools.costmodel.billing import Billing
from batchsight_tools.costmodel.compare import Comparison, compare
from batchsight_tools.costmodel.deployment import Deployment
from batchsight_tools.costmodel.images import Images
from batchsight_tools.costmodel.model import ModelService
from batchsight_tools.costmodel.prices import PriceBook
from batchsight_tools.costmodel.result_pull import PullSettings
from batchsight_tools.costmodel.rows import Row, floor_row, ideal_row, simulated_row
from batchsight_tools.costmodel.search import Searcher, Target
from batchsight_tools.costmodel.stack_shape import template_shape

GOAL_FLOOR_RATIO = 1.25
GOAL_BELOW_START_STOP = 10.0
TRADEOFF_AGES = (1, 3, 10, 30, 60, 300, 900, 3300)


@dataclass
class Lineup:
    rows: list[Row]
    floor: Row
    comparison: Comparison  # the hosted policies' own comparison (model-hours)
    target: Target
    searchers: dict[str, Searcher]

    def row(self, backend: str, policy_start: str) -> Row:
        return next(r for r in self.rows if r.backend == backend and r.policy.startswith(policy_start))

    @property
    def start_stop(self) -> Row:
        return next(r for r in self.rows if r.policy == "batchsight start/stop")

    @property
    def cheapest(self) -> Row:
        return min((r for r in self.rows if not r.policy.startswith("ideal")), key=lambda r: r.cost_per_day)

    @property
    def best(self) -> Row | None:
        """The cheapest row that meets the median target."""
        meeting = [r for r in self.rows if not r.policy.startswith("ideal") and self.target.met(r)]
        return min(meeting, key=lambda r: r.cost_per_day) if meeting else None

    def tradeoff(self, ages: Sequence[float] = TRADEOFF_AGES) -> list[Row]:
        searcher = self.searchers["lambda"]
        return [searcher.row(age) for age in ages if age < self.target.max_seconds]


def build(arrivals: Sequence[float], *, images: Images, budget_seconds: float, p50_seconds: float,
          hosted: str, service: ModelService, billing: Billing, book: PriceBook,
          drain_cold_seconds: float | None = None, results: PullSettings | None = None) -> Lineup:
    """Every row for the trace; ``results`` the gateway's way to its results (pushed by default)."""
    preset = PRESETS[hosted]
    results = results or PullSettings()
    comparison = compare(arrivals, budget_seconds=budget_seconds - results.poll_seconds - 10.0, service=service,
                         billing=billing, backend=preset, images=images)
    rows = []
    for name, label in (("always-on", "always on (the sample's mapping)"),
                        ("seed-hourly", "the sample's hourly schedule"),
                        ("batchsight", "batchsight start/stop")):
        deployment = (Deployment(preset, comparison.policy, preset.drain_memory_mb, service.detect_tps)
                      if name == "batchsight" else None)
        rows.append(simulated_row(comparison.rows[name], arrivals, backend=hosted, policy=label, images=images,
                                  results=results, stack=name == "batchsight", billing=billing, book=book,
                                  shape=template_shape(preset.name).with_drain_memory(preset.drain_memory_mb),
                                  deployment=deployment))
    rows.append(ideal_row(comparison.rows["ideal"], arrivals, backend=preset, images=images, results=results,
                          billing=billing, book=book))
    lambda_search = Searcher(arrivals, PRESETS["lambda"], images, book=book, drain_cold_seconds=drain_cold_seconds,
                             results=results)
    endpoint = Searcher(arrivals, PRESETS["sagemaker-serverless"], images, book=book, results=results)
    target, loose = Target(budget_seconds, p50_seconds), Target(budget_seconds)
    for goal, label in ((target, f"p50 <= {p50_seconds:g} s"), (loose, f"within {budget_seconds / 60:g} min")):
        cheapest = lambda_search.best(goal)
        assert cheapest.deployment is not None
        settings = cheapest.deployment.policy
        twin = endpoint.row(settings.batching.max_age_seconds, settings.results.poll_seconds)
        for row in (twin, cheapest):
            row.policy = f"batchsight, {label} (age {settings.batching.max_age_seconds:g} s)"
            rows.append(row)
    floor = floor_row(len(arrivals), rows[0].days, images, book)
    return Lineup(rows, floor, comparison, target, {"lambda": lambda_search, "sagemaker-serverless": endpoint})
