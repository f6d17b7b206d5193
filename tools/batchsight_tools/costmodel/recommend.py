"""The planner's choice: every candidate backend planned for the target, the cheapest that meets it.

A hosted backend is planned as before (planner.suggest: the age trigger takes what the budget
leaves after the slowest start); a backend with nothing to host by search.Searcher. Each
plan is simulated on the real batching code and state machine and charged in full (rows.py),
so the comparison is between whole bills, not hosting hours.

The candidates are the template's backends (cloud/template.yaml ModelBackend's AllowedValues)
that have a preset, less Lookout for Vision, which ended support in 2025 (it is planned only
when asked for by name); a backend the template does not offer yet (``sagemaker-serverless``)
is priced by bench/cost.py but never recommended, since it could not be deployed.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from batchsight_tools.costmodel.backends import FUNCTION, PRESETS
from batchsight_tools.costmodel.billing import DEFAULT_BILLING, Billing
from batchsight_tools.costmodel.deployment import Deployment
from batchsight_tools.costmodel.images import DEFAULT_IMAGES, Images
from batchsight_tools.costmodel.model import DEFAULT_SERVICE, ModelService
from batchsight_tools.costmodel.planner import BudgetTooSmall, suggest
from batchsight_tools.costmodel.prices import PriceBook
from batchsight_tools.costmodel.result_pull import PullSettings
from batchsight_tools.costmodel.rows import Row, simulated_row
from batchsight_tools.costmodel.search import Searcher, Target
from batchsight_tools.costmodel.stack_shape import template_shape
from batchsight_tools.localcloud.template import load_template

NOT_BY_DEFAULT = ("lookoutvision",)


def template_backends() -> list[str]:
    return list(load_template()["Parameters"]["ModelBackend"]["AllowedValues"])


def template_default_backend() -> str:
    return str(load_template()["Parameters"]["ModelBackend"]["Default"])


def candidates(asked: str | None = None) -> list[str]:
    if asked is not None:
        return [asked]
    return [name for name in template_backends() if name in PRESETS and name not in NOT_BY_DEFAULT]


@dataclass
class Recommendation:
    target: Target
    rows: dict[str, Row]  # the candidates that meet the target
    refused: dict[str, str] = field(default_factory=dict)  # the others, and why

    @property
    def best(self) -> Row:
        if not self.rows:
            raise BudgetTooSmall("; ".join(self.refused.values()) or "no backend to plan")
        return min(self.rows.values(), key=lambda row: row.cost_per_day)


def hosted_service(name: str, speed: ModelService = DEFAULT_SERVICE) -> ModelService:
    """A hosted backend's preset start range with the hosted model's speed."""
    return ModelService(PRESETS[name].start_minutes, speed.detect_latency_seconds, speed.detect_tps, speed.seed)


def plan_hosted(arrivals: Sequence[float], name: str, target: Target, *, service: ModelService, billing: Billing,
                images: Images, book: PriceBook | None = None) -> Row:
    """planner.suggest for the budget, less the result pull's poll (its budget ends at the result
    document; ours at the gateway)."""
    preset = PRESETS[name]
    budget = target.max_seconds - PullSettings().poll_seconds - 10.0
    plan = suggest(arrivals, budget_seconds=budget, service=service, backend=preset, images=images)
    deployment = Deployment(preset, plan.policy, preset.drain_memory_mb, service.detect_tps)
    return simulated_row(plan.result, arrivals, backend=preset, policy="batchsight start/stop", images=images,
                         results=plan.policy.results, stack=True, billing=billing, book=book,
                         shape=template_shape(preset.name).with_drain_memory(preset.drain_memory_mb),
                         deployment=deployment)


def recommend(arrivals: Sequence[float], target: Target, *, backends: Sequence[str] | None = None,
              images: Images = DEFAULT_IMAGES, services: Mapping[str, ModelService] | None = None,
              billing: Billing = DEFAULT_BILLING, book: PriceBook | None = None,
              drain_cold_seconds: float | None = None) -> Recommendation:
    """Each candidate planned for the target on the trace; the cheapest that meets it is ``best``.

    ``services`` gives a hosted backend's start range and speed (its preset's unless given);
    the serverless backends' speed comes from ``images.detector_ms``.
    """
    recommendation = Recommendation(target, {})
    for name in backends if backends is not None else candidates():
        preset = PRESETS[name]
        try:
            if preset.hosted:
                service = (services or {}).get(name) or hosted_service(name)
                if target.p50_seconds is not None and target.p50_seconds < service.start_low_seconds:
                    raise BudgetTooSmall(f"{name}: half the images within {target.p50_seconds:g} s is less than "
                                         f"one start ({service.start_minutes[0]:g} min at the least)")
                row = plan_hosted(arrivals, name, target, service=service, billing=billing, images=images, book=book)
            else:
                cold = drain_cold_seconds if preset.kind == FUNCTION else None  # --cold-start-seconds: lambda's
                searcher = Searcher(arrivals, preset, images, book=book, drain_cold_seconds=cold)
                row = searcher.best(target)
        except BudgetTooSmall as exc:
            recommendation.refused[name] = str(exc)
            continue
        if target.met(row):
            recommendation.rows[name] = row
        else:
            recommendation.refused[name] = f"{name}: its plan misses the target ({target.describe()})"
    return recommendation
