"""bench/site.py at a small scale: many gateways on several models of one local stack.

The same run the benchmark makes (the real stack, two model routes added with `batchsight model
route`, simulated gateways with their own result queues), shortened: six gateways on three
models for twenty seconds. Every image must get exactly one result, at its own gateway, judged
by its own model, each model hosted under its own lock.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from batchsight_tools.bench.site.report import checks, summary, table
from batchsight_tools.bench.site.run import SiteConfig, run

pytestmark = pytest.mark.integration


def test_every_image_gets_one_result_at_its_own_gateway_from_its_own_model(tmp_path: Path) -> None:
    cfg = SiteConfig(gateways=6, models=3, minutes=20 / 60, batch_seconds=10, images_per_batch=2, drain_seconds=90)
    outcome = run(cfg, tmp_path)
    found = checks(outcome)
    assert found.all(), "\n".join(summary(cfg, outcome))
    assert [entry.route for entry in outcome.models] == ["default", "pcb", "bottle"]
    for entry in outcome.models:
        images = sum(len(g.seen.sent) for g in entry.gateways)
        assert images == 2 * 2 * 2 and entry.starts >= 1 and entry.hosted_seconds > 0, entry
    assert len(table(outcome)) == 2 + 3
