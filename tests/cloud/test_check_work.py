"""CheckWork's decisions: is there work (in-flight messages count), how many drain workers, the totals.

``plan`` and ``tally`` are pure (the cost model runs them too); the handler is run against real
SQS queues in moto server, with messages both visible and in flight.
"""
from __future__ import annotations

from typing import Any

import pytest

from batchsight_pipeline.settings import Settings
from batchsight_tools.stack import function
from tests.cloud.moto_stack import Stack

check_work = function("check_work")


def settings(*, drain_workers: int = 4, poll_seconds: int = 30) -> Settings:
    return Settings(queue_url="q", dead_letter_queue_url="dlq", source_bucket="s", final_bucket="f",
                    backend="b", poll_seconds=poll_seconds, start_timeout_seconds=60, drain_workers=drain_workers,
                    detect_concurrency=4, detect_tps=10, lock_table="t")


# --- plan ------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("visible", "in_flight", "has_work"), [
    (0, 0, False),
    (3, 0, True),
    (0, 2, True),  # a worker may have died holding them: they come back, so the model must stay up
])
def test_work_is_anything_visible_or_in_flight(visible: int, in_flight: int, has_work: bool) -> None:
    plan = check_work.plan(visible, in_flight, settings())
    assert plan["has_work"] is has_work
    assert (plan["visible"], plan["in_flight"]) == (visible, in_flight)


@pytest.mark.parametrize(("visible", "drain_workers", "workers"), [
    (0, 4, 1),  # only in flight: one worker is there when they come back
    (1, 4, 1),
    (10, 4, 1),  # one receive batch
    (11, 4, 2),
    (35, 4, 4),
    (500, 4, 4),  # never more than DRAIN_WORKERS (the Map's MaxConcurrency)
    (500, 1, 1),
])
def test_one_worker_per_receive_batch_up_to_the_setting(visible: int, drain_workers: int, workers: int) -> None:
    plan = check_work.plan(visible, 0, settings(drain_workers=drain_workers))
    assert plan["workers"] == list(range(workers))  # the Map's items: one per worker


def test_the_plan_carries_the_poll_interval_for_the_wait_states() -> None:
    assert check_work.plan(0, 1, settings(poll_seconds=7))["poll_seconds"] == 7


# --- tally -----------------------------------------------------------------------------------------

def test_tally_starts_at_zero() -> None:
    assert check_work.tally(None, None) == {"processed": 0, "anomalous": 0, "poisoned": 0, "retried": 0}


def test_tally_adds_every_drain_worker_to_the_running_totals() -> None:
    previous = {"processed": 10, "anomalous": 1, "poisoned": 0, "retried": 2}
    drained = [{"processed": 5, "anomalous": 2, "poisoned": 1, "retried": 0},
               {"processed": 3, "anomalous": 0, "poisoned": 0, "retried": 1}]
    assert check_work.tally(previous, drained) == {"processed": 18, "anomalous": 3, "poisoned": 1, "retried": 3}


def test_tally_counts_a_missing_field_as_zero_and_ignores_unknown_ones() -> None:
    assert check_work.tally({"processed": 1}, [{"anomalous": 1, "elapsed_ms": 900}]) == {
        "processed": 1, "anomalous": 1, "poisoned": 0, "retried": 0}


# --- the function against SQS ----------------------------------------------------------------------

def queue_messages(stack: Stack, count: int) -> None:
    for first in range(0, count, 10):
        stack.sqs.send_message_batch(QueueUrl=stack.queue, Entries=[
            {"Id": str(n), "MessageBody": f"m{n}"} for n in range(first, min(first + 10, count))])


def take(stack: Stack, count: int) -> None:
    """Receive ``count`` messages without deleting them, as a drain worker holds them."""
    while count:
        taken = stack.sqs.receive_message(QueueUrl=stack.queue, MaxNumberOfMessages=min(10, count),
                                          VisibilityTimeout=300).get("Messages", [])
        assert taken, "fewer messages visible than the test queued"
        count -= len(taken)


def test_the_function_sizes_the_drain_from_the_queue(stack: Stack, lambda_context: Any) -> None:
    queue_messages(stack, 25)
    take(stack, 4)
    result = check_work.handler({"execution": "e"}, lambda_context)
    assert (result["has_work"], result["visible"], result["in_flight"]) == (True, 21, 4)
    assert result["workers"] == [0, 1]  # 3 receive batches, but DRAIN_WORKERS=2
    assert result["poll_seconds"] == 1


def test_messages_held_by_a_worker_keep_the_execution_going(stack: Stack, lambda_context: Any) -> None:
    queue_messages(stack, 2)
    take(stack, 2)
    result = check_work.handler({"execution": "e"}, lambda_context)
    assert (result["has_work"], result["visible"], result["in_flight"]) == (True, 0, 2)


def test_an_empty_queue_ends_the_execution_with_its_totals(stack: Stack, lambda_context: Any) -> None:
    """CheckRemaining passes the totals so far and the Map's outputs; the function sums them."""
    event = {"execution": "e", "tally": {"processed": 4, "anomalous": 1, "poisoned": 0, "retried": 0},
             "drained": [{"processed": 2, "anomalous": 0, "poisoned": 1, "retried": 0}]}
    result = check_work.handler(event, lambda_context)
    assert result["has_work"] is False
    assert result["tally"] == {"processed": 6, "anomalous": 1, "poisoned": 1, "retried": 0}
