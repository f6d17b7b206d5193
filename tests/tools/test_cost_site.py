"""A site on one stack in the cost model: the default day split over gateways sharing the model,
with and without the pipeline's hosting notices (batchsight_pipeline/hosting_notice.py)."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from batchsight_tools.costmodel import default_day
from batchsight_tools.costmodel.compare import Comparison, compare
from batchsight_tools.costmodel.options import service_from
from batchsight_tools.costmodel.services import Queue
from batchsight_tools.costmodel.site import site_runs
from tests.support import REPO
from tests.tools.test_costmodel import BUDGET, _model_args


@pytest.fixture(scope="module")
def comparison() -> Comparison:
    return compare(default_day(), budget_seconds=BUDGET, service=service_from(_model_args()))


def test_forty_gateways_told_of_each_hosting_stay_near_the_ideal(comparison: Comparison) -> None:
    """Within 1.15x for the bench's plan (bench/cost.py); a plan a few seconds of age away has the
    model stopped seconds before a follower's messages are visible, and started again: 1.19x. So
    this holds the site to 1.25x, and far below the gateways left to their own results."""
    (announced, alone) = site_runs(default_day(), comparison, service_from(_model_args()), sizes=[40])
    ideal = comparison.hours("ideal")
    assert announced.result.billed_hours(comparison.billing) <= 1.25 * ideal
    assert alone.result.billed_hours(comparison.billing) > 1.8 * ideal, "each gateway starting at its own age"
    for run in (announced, alone):
        assert len(run.result.latencies) == len(default_day()) and not run.result.notes


def test_a_queue_keeps_messages_in_the_order_they_become_visible() -> None:
    """A small batch cut after a large one may finish its upload first (another gateway's)."""
    queue = Queue()
    queue.put(1, 30.0)
    queue.put(2, 12.0)
    queue.take(12.0, 1.0)
    assert queue.done == {2: 13.0} and queue.next_visible_at() == 30.0
    with pytest.raises(ValueError, match="before a receive"):
        queue.put(3, 11.0)


SCRIPT = """
from batchsight_tools.costmodel import default_day
from batchsight_tools.costmodel.edge import EdgeBatching
from batchsight_tools.costmodel.model import DEFAULT_SERVICE
from batchsight_tools.costmodel.pipeline import OurPolicy, simulate_ours
result = simulate_ours(default_day(), OurPolicy(batching=EdgeBatching(max_age_seconds=2214.0, max_images=700)),
                       DEFAULT_SERVICE, gateways=3)
print(result.starts, sorted(result.executions.items()), result.intervals)
"""


def test_the_same_day_gives_the_same_figures_whatever_the_hash_seed() -> None:
    """Batch names once came from the ids of objects freed meanwhile, so a hash seed (memory
    layout) decided which batches counted as seen hosting: 86 to 88 executions for one plan."""
    outputs = {subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, check=True, cwd=REPO,
                              env={**os.environ, "PYTHONHASHSEED": seed}).stdout for seed in ("1", "3")}
    assert len(outputs) == 1, outputs
