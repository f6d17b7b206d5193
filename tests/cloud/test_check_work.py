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


def settings(*, drain_workers: int = 4, poll_seconds: int = 30, drain_target_seconds: float = 0.0) -> Settings:
    return Settings(queue_url="q", dead_letter_queue_url="dlq", source_bucket="s", final_bucket="f",
                    backend="b", poll_seconds=poll_seconds, start_timeout_seconds=60, drain_workers=drain_workers,
                    detect_concurrency=4, detect_tps=10, lock_table="t", drain_target_seconds=drain_target_seconds)


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


@pytest.mark.parametrize(("visible", "target", "workers"), [
    (0, 5, 1),
    (20, 5, 2),  # within the target on the DrainWorkers alone
    (60, 5, 3),  # 25 images per worker in 5 s
    (95, 5, 4),
    (400, 5, 16),  # the Map's MaxConcurrency
    (35, 1, 4),  # 7 workers would judge them in 1 s, but never more than one per receive batch
])
def test_a_detector_in_the_drain_gets_workers_enough_for_the_backlog(visible: int, target: float,
                                                                       workers: int) -> None:
    """DetectTps 10 over DrainWorkers 2: 5 images a second each, so 5 per worker and second of the target."""
    plan = check_work.plan(visible, 0, settings(drain_workers=2, drain_target_seconds=target))
    assert plan["workers"] == list(range(workers))


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


def test_with_a_detector_in_the_drain_the_function_sizes_the_drain_from_the_backlog(
        stack: Stack, lambda_context: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The template gives the lambda backend DRAIN_TARGET_SECONDS: 60 waiting images at 5 a second
    per worker (DETECT_TPS over DRAIN_WORKERS) take 3 workers to judge within 4 s."""
    monkeypatch.setenv("DRAIN_TARGET_SECONDS", "4")
    monkeypatch.setenv("DETECT_TPS", "10")
    queue_messages(stack, 60)
    result = check_work.handler({"execution": "e"}, lambda_context)
    assert result["visible"] == 60 and result["workers"] == [0, 1, 2]


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


# --- while draining: overload control, the history, the status for the gateways ---------------------

def status_object(stack: Stack) -> dict[str, Any] | None:
    import json

    from batchsight_pipeline.pipeline_status import STATUS_KEY

    try:
        return json.loads(stack.s3.get_object(Bucket=stack.final_bucket, Key=STATUS_KEY)["Body"].read())
    except stack.s3.exceptions.NoSuchKey:
        return None


def test_a_round_is_summed_measured_and_reported_to_the_gateways(stack: Stack, lambda_context: Any) -> None:
    import jsonschema

    from tests.support import load_schema

    import time

    queue_messages(stack, 30)
    previous = {"checked_at": time.time() - 280, "visible": 40, "backlog": 40, "units": 1}  # a round ago
    result = check_work.handler({"execution": "e", "phase": "round", "drained": [{"processed": 10}],
                                 "load": previous, "events": 100}, lambda_context)
    assert result["tally"]["processed"] == 10 and result["load"]["backlog"] == 30
    assert result["events"] == 100 + 16 + 7  # the made-up execution has no history: the estimate
    assert result["hand_over"] is False and result["successor"] == ""
    status = status_object(stack)
    assert status is not None
    jsonschema.validate(status, load_schema("pipeline_status"))
    assert (status["backlog"], status["backpressure"], status["state"]) == (30, False, "ok")
    assert status["queue_empty_at"] == ""


def test_an_execution_that_may_never_get_the_lock_does_not_speak_for_the_pipeline(
        stack: Stack, lambda_context: Any) -> None:
    queue_messages(stack, 5)
    check_work.handler({"execution": "e"}, lambda_context)
    assert status_object(stack) is None
    stack.sqs.purge_queue(QueueUrl=stack.queue)
    result = check_work.handler({"execution": "e", "phase": "after_release", "events": 10}, lambda_context)
    status = status_object(stack)
    assert result["has_work"] is False and status is not None
    assert status["state"] == "idle" and status["queue_empty_at"].endswith("Z")


def test_past_the_hand_over_threshold_a_successor_is_named(
        stack: Stack, lambda_context: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from batchsight_pipeline import history

    monkeypatch.setenv("HANDOVER_EVENTS", "500")
    queue_messages(stack, 3)
    execution = "arn:aws:states:us-east-1:123456789012:execution:BatchStateMachine-x:gw-1"
    result = check_work.handler({"execution": execution, "phase": "round", "drained": [], "events": 495},
                                lambda_context)
    assert result["hand_over"] is True and result["successor"] == history.successor_name(execution)
    start = check_work.handler({"execution": execution, "phase": "start", "events": 0}, lambda_context)
    assert start["hand_over"] is False, "an execution that has not started anything never hands over"


def test_near_the_quota_without_a_successor_the_model_is_stopped(stack: Stack, lambda_context: Any) -> None:
    from batchsight_pipeline.history import HistoryQuotaNear

    queue_messages(stack, 3)
    with pytest.raises(HistoryQuotaNear):
        check_work.handler({"execution": "e", "phase": "in_flight", "events": 19_995}, lambda_context)


def test_rounds_in_which_every_worker_gave_up_stop_the_model_after_a_few(stack: Stack, lambda_context: Any) -> None:
    queue_messages(stack, 3)
    gave_up = [{"processed": 0, "gave_up": 1}, {"processed": 0, "gave_up": 1}]
    stalls = 0
    for _ in range(check_work.STALLED_ROUNDS - 1):
        stalls = check_work.handler({"execution": "e", "phase": "round", "drained": gave_up,
                                     "stalled": stalls}, lambda_context)["stalled"]
    assert stalls == check_work.STALLED_ROUNDS - 1
    assert check_work.handler({"execution": "e", "phase": "round", "drained": gave_up[:1] + [{"processed": 3}],
                               "stalled": stalls}, lambda_context)["stalled"] == 0, "one worker got through"
    with pytest.raises(check_work.DrainStalled):
        check_work.handler({"execution": "e", "phase": "round", "drained": gave_up,
                            "stalled": check_work.STALLED_ROUNDS - 1}, lambda_context)


def test_arrivals_beyond_one_unit_scale_up_to_the_ceiling_and_then_saturate(
        stack: Stack, lambda_context: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """DetectTps 200 per unit (the stack fixture), DrainWorkers 2: far more arrive than two units drain."""
    import time

    monkeypatch.setenv("MAX_SCALE_UNITS", "2")
    queue_messages(stack, 200)
    now = time.time()
    previous = {"checked_at": now - 100, "visible": 200, "backlog": 200, "units": 1,
                "arrival_rate": 1000.0, "unit_rate": 200.0}
    result = check_work.handler({"execution": "e", "phase": "round", "drained": [{"processed": 20_000}],
                                 "load": previous}, lambda_context)
    assert result["load"]["units"] == 2 and result["workers"] == [0, 1, 2, 3]
    assert result["load"]["saturated"] is False, "one check behind may be a gateway's batch landing at once"
    load = {**result["load"], "checked_at": result["load"]["checked_at"] - 100}  # a round later, still behind
    result = check_work.handler({"execution": "e", "phase": "round", "drained": [{"processed": 20_000}],
                                 "load": load}, lambda_context)
    assert result["load"]["saturated"] is True
    status = status_object(stack)
    assert status and status["backpressure"] is True and status["state"] == "saturated" and status["units"] == 2
    assert "ceiling" in status["reason"]


@pytest.mark.parametrize(("variable", "value", "message"), [
    ("HANDOVER_EVENTS", "10", r"HANDOVER_EVENTS=10.0 must be >= 50"),
    ("MAX_SCALE_UNITS", "0", r"MAX_SCALE_UNITS=0.0 must be >= 1"),
    ("BACKLOG_TARGET_MINUTES", "soon", r"BACKLOG_TARGET_MINUTES='soon' is not a number"),
])
def test_a_bad_setting_of_overload_control_or_the_hand_over_is_one_clear_error(
        stack: Stack, monkeypatch: pytest.MonkeyPatch, variable: str, value: str, message: str) -> None:
    from batchsight_pipeline.settings import Settings, SettingsError

    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError, match=message):
        Settings.from_env()
