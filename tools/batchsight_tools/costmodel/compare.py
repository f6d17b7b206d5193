"""The four policies on one trace, and the table and ratios that the bench and the CLI print."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from batchsight_tools.costmodel.backends import PRESETS, BackendPreset
from batchsight_tools.costmodel.baselines import simulate_always_on, simulate_seed
from batchsight_tools.costmodel.billing import DEFAULT_BILLING, Billing
from batchsight_tools.costmodel.ideal import simulate_ideal
from batchsight_tools.costmodel.images import DEFAULT_IMAGES, Images
from batchsight_tools.costmodel.model import DEFAULT_SERVICE, ModelService, PolicyResult
from batchsight_tools.costmodel.pipeline import OurPolicy, simulate_ours
from batchsight_tools.costmodel.planner import Plan, suggest
from batchsight_tools.costmodel.stack_shape import template_shape

GOAL_VS_IDEAL = 1.15
GOAL_VS_SEED = 3.0


@dataclass
class Comparison:
    rows: dict[str, PolicyResult]
    billing: Billing
    budget_seconds: float
    policy: OurPolicy
    backend: BackendPreset = PRESETS["sagemaker"]
    images: Images = DEFAULT_IMAGES

    def hours(self, name: str) -> float:
        return self.rows[name].billed_hours(self.billing)

    @property
    def ours_to_ideal(self) -> float:
        return self.hours("batchsight") / self.hours("ideal")

    @property
    def seed_to_ours(self) -> float:
        return self.hours("seed-hourly") / self.hours("batchsight")


def compare(arrivals: Sequence[float], *, budget_seconds: float, service: ModelService = DEFAULT_SERVICE,
            billing: Billing = DEFAULT_BILLING, policy: OurPolicy | None = None,
            backend: BackendPreset = PRESETS["sagemaker"], images: Images = DEFAULT_IMAGES) -> Comparison:
    """Always-on, the seed's hourly loop, batchsight (planned for the budget unless given), ideal,
    all with the hosted ``backend``."""
    if policy is None:  # first: it raises BudgetTooSmall before any other work
        plan: Plan = suggest(arrivals, budget_seconds=budget_seconds, service=service, backend=backend, images=images)
        policy, ours = plan.policy, plan.result
    else:
        ours = simulate_ours(arrivals, policy, service, backend=backend, images=images,
                             shape=template_shape(backend.name).with_drain_memory(backend.drain_memory_mb))
    always_on = simulate_always_on(arrivals, service, backend=backend, images=images)
    seed = simulate_seed(arrivals, service, backend=backend, images=images)
    ideal = simulate_ideal(arrivals, service, budget_seconds=budget_seconds, always_on=always_on,
                           billing=billing)
    rows = {r.name: r for r in (always_on, seed, ours, ideal)}
    return Comparison(rows, billing, budget_seconds, policy, backend, images)


HEADER = (f"{'policy':<12} {'model-h':>8} {'cost USD':>9} {'starts':>6} "
          f"{'p50 min':>8} {'p95 min':>8} {'max min':>8}")


def row(result: PolicyResult, billing: Billing) -> str:
    return (f"{result.name:<12} {result.billed_hours(billing):>8.2f} {result.cost(billing):>9.2f} "
            f"{result.starts:>6d} {result.percentile(50) / 60:>8.1f} {result.percentile(95) / 60:>8.1f} "
            f"{result.max_latency / 60:>8.1f}")


def table(comparison: Comparison) -> list[str]:
    return [HEADER] + [row(r, comparison.billing) for r in comparison.rows.values()]


def ratio_line(comparison: Comparison) -> str:
    return (f"ratios: batchsight/ideal {comparison.ours_to_ideal:.2f} (goal <= {GOAL_VS_IDEAL}), "
            f"seed-hourly/batchsight {comparison.seed_to_ours:.2f} (goal >= {GOAL_VS_SEED:g})")
