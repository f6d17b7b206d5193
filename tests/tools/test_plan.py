"""The planner's recommendation, the template's default backend, and ``batchsight plan``."""
from __future__ import annotations

import re

import pytest

from batchsight_tools.costmodel import default_day, rate_trace
from batchsight_tools.costmodel.backends import PRESETS
from batchsight_tools.costmodel.images import Images
from batchsight_tools.costmodel.recommend import candidates, recommend, template_backends, template_default_backend
from batchsight_tools.costmodel.search import Searcher, Target
from batchsight_tools.plan import main

HOUR = 3600.0


def test_the_presets_are_the_templates_backends_with_its_default() -> None:
    """Every backend of cloud/template.yaml has a cost preset, and its default is what ``batchsight
    plan`` recommends for the default day with its default budget (every image within 60 minutes)."""
    assert set(template_backends()) <= set(PRESETS)
    recommendation = recommend(default_day(), Target(60 * 60.0))
    assert set(recommendation.rows) == set(candidates()) and not recommendation.refused
    assert template_default_backend() == recommendation.best.backend == "lambda"
    assert "lookoutvision" not in candidates() and candidates("lookoutvision") == ["lookoutvision"]


def test_with_nothing_to_host_bigger_batches_cost_less_and_wait_longer() -> None:
    """The trade-off the search walks: the executions a day (about 20 transitions each) fall as the
    batch age grows, and so does the bill, while the median latency grows."""
    searcher = Searcher(rate_trace(300, shifts=[(6.0, 10.0)]), PRESETS["lambda"], Images())
    rows = [searcher.row(age) for age in (2, 30, 600)]
    assert [r.executions for r in rows] == sorted((r.executions for r in rows), reverse=True)
    assert [r.cost_per_day for r in rows] == sorted((r.cost_per_day for r in rows), reverse=True)
    assert [r.latency(50) for r in rows] == sorted(r.latency(50) or 0 for r in rows)


def test_a_median_target_of_seconds_is_met_by_small_batches_and_no_start() -> None:
    arrivals = rate_trace(300, shifts=[(6.0, 9.0)])
    recommendation = recommend(arrivals, Target(HOUR, 20.0), backends=["lambda", "sagemaker"])
    assert "sagemaker" in recommendation.refused  # a start takes minutes
    best = recommendation.best
    assert best.backend == "lambda" and best.deployment is not None
    assert (best.latency(50) or 0) <= 20.0 and best.deployment.policy.batching.max_age_seconds <= 20
    assert not best.deployment.policy.batching.follow  # nothing hosted to follow


def test_plan_prints_the_backend_its_settings_and_the_bill(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--rate", "200", "--shifts", "06:00-14:00", "--budget-minutes", "90"]) == 0
    out = capsys.readouterr().out
    assert "Recommended: lambda" in out
    assert "sam deploy --parameter-overrides ModelBackend=lambda DrainMemorySize=" in out
    assert "DrainWorkers=" in out and "DetectConcurrency=" in out and "PollSeconds=" in out
    for setting in ("max_age_seconds:", "max_images:", "interval_seconds:", "follow: false", "poll_seconds:"):
        assert setting in out
    assert "USD per month (730 h)" in out and "| Step Functions |" in out and "x the floor" in out
    cuts = dict(re.findall(r"  (Dashboard=false|ImageUpload=final-bucket): -([0-9.]+) USD per month", out))
    assert set(cuts) == {"Dashboard=false", "ImageUpload=final-bucket"} and all(float(v) > 0 for v in cuts.values())
    bill, lean = (float(re.search(pattern, out).group(1))  # type: ignore[union-attr]
                  for pattern in (r"Expected bill: ([0-9.]+) USD per day", r"  all of them: ([0-9.]+) USD per day"))
    assert lean == pytest.approx(bill - sum(float(v) for v in cuts.values()) / (730 / 24), abs=0.002)


def test_plan_for_a_hosted_backend_keeps_its_preset_and_its_limits(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--rate", "200", "--shifts", "06:00-14:00", "--backend", "sagemaker", "--budget-minutes", "90"]) == 0
    out = capsys.readouterr().out
    assert "backend sagemaker (start 5-10 min, 0.23 USD per instance-hour)" in out
    assert "ModelBackend=sagemaker DrainMemorySize=512" in out and "follow: true" in out
    assert main(["--rate", "200", "--backend", "sagemaker", "--budget-minutes", "10"]) == 1  # no time after a start
    assert "No backend meets this budget" in capsys.readouterr().out
