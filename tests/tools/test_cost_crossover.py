"""When a SageMaker endpoint would cost less than the lambda backend: the steady-rate crossover."""
from __future__ import annotations

import pytest

from batchsight_tools.costmodel import crossover as steady
from batchsight_tools.costmodel.backends import PRESETS
from batchsight_tools.costmodel.prices import price_book, with_price
from batchsight_tools.costmodel.search import Searcher
from batchsight_tools.costmodel.trace import rate_trace

CPU, GPU = steady.CASES
FREE_DATA = with_price(price_book(), "sagemaker.data_processed_gb", 0.0)


def test_a_lambda_image_costs_what_its_requests_and_drain_time_add_up_to() -> None:
    """Per image of the 50 ms detector: PUT image, PUT result, COPY (0.005 per 1,000 each); GET image
    and GET package.json (0.0004 per 1,000 each); a tenth of a SendMessageBatch, of a ReceiveMessage
    and of a DeleteMessageBatch (0.40 per million); 55 ms of drain at 1,769 MB x86 (one worker of two busy at
    a time: each worker bills its own time)."""
    per_image = 3 * 0.000005 + 2 * 0.0000004 + 0.3 * 0.0000004 + 0.055 * 1769 / 1024 * 0.0000166667
    assert steady.batch_line("lambda", CPU).per_image == pytest.approx(per_image, rel=0.05)
    assert steady.batch_line("lambda", CPU).fixed == pytest.approx(0.00056, rel=0.2)  # ~18 transitions and more


def test_with_these_prices_no_rate_makes_an_endpoint_cheaper() -> None:
    """SageMaker's 0.016 USD per GB processed (3.2 micro-USD per 200 KB image) alone is more than the
    function's compute for the 50 ms detector, so even a busy ml.m5.xlarge loses; a g4dn.xlarge
    judging one image at a time costs 0.736 / 18,000 per image when busy, above Lambda's 10 GB x 0.2 s."""
    for case in (CPU, GPU):
        assert steady.crossover(case) is None
        assert steady.crossover(case, steady.start_stop_day) is None
    assert steady.break_even_ms(CPU) > CPU.images.detector_ms
    assert steady.break_even_ms(GPU) > GPU.images.detector_ms


def test_without_the_data_charge_a_busy_cpu_endpoint_wins_above_its_crossover() -> None:
    rate = steady.crossover(CPU, book=FREE_DATA)
    assert rate is not None and 50_000 < rate < steady.instance_capacity(CPU)
    assert steady.always_on_day(rate * 1.01, CPU, FREE_DATA) < steady.lambda_day(rate * 1.01, CPU, FREE_DATA)
    assert steady.always_on_day(rate * 0.99, CPU, FREE_DATA) > steady.lambda_day(rate * 0.99, CPU, FREE_DATA)
    started = steady.crossover(CPU, steady.start_stop_day, FREE_DATA)
    # starting and stopping saves idle hours, so it wins from the always-on crossover at the latest
    # (below it by how much the drain workers CheckWork adds for a big batch cost the function)
    assert started is not None and 0.2 * rate < started <= rate * 1.001
    assert steady.crossover(GPU, book=FREE_DATA) is None


# The result's way back to the gateway, pushed or listed (costmodel/result_pull.py): the same for every backend.
RESULT_DELIVERY = ("by the gateway", "to the gateway", "of results by the drain", "GetQueueUrl by a cold drain")


def test_the_steady_formula_agrees_with_the_simulated_day() -> None:
    """600 images an hour all day, 300-second batches: the simulation's judging costs (all but the
    result's delivery to the gateway and the fixed charges) within 10% of batch_line's fixed + n x per_image."""
    arrivals = rate_trace(600, seed=3)
    row = Searcher(arrivals, PRESETS["lambda"], CPU.images).row(300)
    pulled = sum(c.usd for c in row.bill.charges if any(part in c.line.item for part in RESULT_DELIVERY))
    judged = row.variable_per_day - pulled
    assert judged == pytest.approx(steady.lambda_day(600, CPU), rel=0.10)
