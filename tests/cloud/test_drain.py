"""Drain's decisions for one message, on real S3 and SQS (moto server).

One result per image, written before the image moves and the message goes; poison to the
dead-letter queue with its reason; a failing image retried, and dead-lettered on its last
delivery. ``Drainer.process`` is what a drain thread runs for each message it received; the
whole handler (receiving until the queue is empty) runs in test_metrics.py and in the
integration tests.
"""
from __future__ import annotations

import json
from typing import Any

import pytest

from batchsight_pipeline import aws
from batchsight_pipeline.backends import backend_from_settings
from batchsight_pipeline.backends.sagemaker import SageMakerBackend
from batchsight_pipeline.contracts import ImageMessage, parse_message
from batchsight_pipeline.settings import Settings
from batchsight_tools.stack import function
from tests.cloud import fake_backend
from tests.cloud.fake_backend import MASK, MODEL_ID
from tests.cloud.moto_stack import Moto, Stack

drain = function("drain")
EXECUTION = "arn:aws:states:us-east-1:123456789012:execution:batch:run-1"


def process_next() -> Any:
    """Receive the next message as a drain worker does, and process it; the Outcome. Its delete
    and the push of its result go out, as the round's end sends them."""
    settings = Settings.from_env()
    worker = drain.Drainer(settings, backend_from_settings(settings), EXECUTION, remaining_ms=lambda: 300_000)
    (message,) = worker.receive()
    outcome = worker.process(message)
    worker.deletions.flush()
    worker.push.close()
    return outcome


def image_of(message: dict[str, Any]) -> ImageMessage:
    return parse_message(json.dumps(message), source_bucket=message["bucket"], final_bucket="final")


def stored(stack: Stack, bucket: str, key: str) -> bytes | None:
    listed = stack.s3.list_objects_v2(Bucket=bucket, Prefix=key).get("Contents", [])
    return stack.s3.get_object(Bucket=bucket, Key=key)["Body"].read() if listed else None


def dead_letters(stack: Stack) -> list[dict[str, Any]]:
    return list(stack.sqs.receive_message(QueueUrl=stack.dlq, MaxNumberOfMessages=10,
                                          MessageAttributeNames=["All"]).get("Messages", []))


def test_an_image_gets_its_result_then_moves_and_its_message_goes(stack: Stack) -> None:
    image = image_of(stack.queue_image(b"normal image"))
    assert process_next() == drain.Outcome(processed=1)
    document = json.loads(stored(stack, stack.final_bucket, image.result_key()) or b"null")
    assert document["result"] == {"Source": {"Type": "direct"}, "IsAnomalous": False, "Confidence": 0.2}
    assert document["model"] == {"backend": "fake", "name": MODEL_ID}
    assert (document["execution"], document["image"]) == (EXECUTION, {"key": image.image_key()})
    assert "mask" not in document
    assert stored(stack, stack.final_bucket, image.image_key()) == b"normal image"
    assert stored(stack, stack.source_bucket, image.key) is None
    assert stack.depth(stack.queue) == 0


def test_an_anomaly_mask_is_an_object_of_its_own_next_to_the_result(stack: Stack) -> None:
    image = image_of(stack.queue_image(b"Anomalous image"))
    assert process_next() == drain.Outcome(processed=1, anomalous=1)
    raw = stored(stack, stack.final_bucket, image.result_key()) or b""
    assert json.loads(raw)["mask"] == {"key": image.mask_key()} and b"_mask_png" not in raw
    assert stored(stack, stack.final_bucket, image.mask_key()) == MASK
    head = stack.s3.head_object(Bucket=stack.final_bucket, Key=image.mask_key())
    assert head["ContentType"] == "image/png"


def test_a_redelivered_message_keeps_the_result_it_already_has(stack: Stack) -> None:
    """SQS delivers at least once: the image has moved, its result stays as it is."""
    message = stack.queue_image(b"normal image")
    image = image_of(message)
    process_next()
    first = stored(stack, stack.final_bucket, image.result_key())
    stack.sqs.send_message(QueueUrl=stack.queue, MessageBody=json.dumps(message))
    assert process_next() == drain.Outcome(processed=1)
    assert stored(stack, stack.final_bucket, image.result_key()) == first
    assert stack.depth(stack.queue) == 0 and dead_letters(stack) == []


def test_stored_results_messages_are_deleted_ten_at_a_time(stack: Stack) -> None:
    """DeleteMessageBatch: the tenth stored result deletes all ten; the rest wait for the round's end."""
    images = [image_of(stack.queue_image(b"normal image", n=n)) for n in range(12)]
    settings = Settings.from_env()
    worker = drain.Drainer(settings, backend_from_settings(settings), EXECUTION, remaining_ms=lambda: 300_000)
    batches: list[int] = []
    event = "before-parameter-build.sqs.DeleteMessageBatch"
    worker.sqs.meta.events.register(event, lambda params, **_: batches.append(len(params["Entries"])),
                                    unique_id="count-batches")
    try:
        received = worker.receive() + worker.receive()
        assert [worker.process(message) for message in received] == [drain.Outcome(processed=1)] * 12
        assert all(stored(stack, stack.final_bucket, image.result_key()) for image in images)
        assert batches == [10] and stack.depth(stack.queue) == 2  # stored, their deletes held
        worker.deletions.flush()
        assert batches == [10, 2] and stack.depth(stack.queue) == 0
    finally:
        worker.sqs.meta.events.unregister(event, unique_id="count-batches")


def test_a_held_delete_waits_at_most_the_hold_time(stack: Stack) -> None:
    stack.queue_image(b"normal image")
    now = [100.0]
    deletions = drain.Deletions(stack.sqs, stack.queue, clock=lambda: now[0])
    (message,) = stack.sqs.receive_message(QueueUrl=stack.queue)["Messages"]
    deletions.add(message["ReceiptHandle"])
    now[0] += drain.HOLD_SECONDS - 1
    deletions.flush_due()
    assert stack.depth(stack.queue) == 1
    now[0] += 1
    deletions.flush_due()
    assert stack.depth(stack.queue) == 0


def unreadable(stack: Stack) -> str:
    stack.sqs.send_message(QueueUrl=stack.queue, MessageBody="{not json")
    return "not JSON"


def missing_image(stack: Stack) -> str:
    image = image_of(stack.queue_image(b"normal image"))
    stack.s3.delete_object(Bucket=stack.source_bucket, Key=image.key)  # gone, and no result was ever stored
    return "does not exist and has no result"


def rejected_image(stack: Stack) -> str:
    stack.queue_image(b"Rejected image")
    return "cannot read this image"


@pytest.mark.parametrize("poison", [unreadable, missing_image, rejected_image])
def test_poison_goes_to_the_dead_letter_queue_at_once_with_its_reason(stack: Stack, poison: Any) -> None:
    reason = poison(stack)
    assert process_next() == drain.Outcome(poisoned=1)
    (dead,) = dead_letters(stack)
    assert reason in dead["MessageAttributes"]["reason"]["StringValue"]
    assert dead["MessageAttributes"]["execution"]["StringValue"] == EXECUTION
    assert stack.depth(stack.queue) == 0


def test_a_failing_image_is_left_in_the_queue_for_a_later_delivery(stack: Stack) -> None:
    image = image_of(stack.queue_image(b"Error image"))
    assert process_next() == drain.Outcome(retried=1)
    assert stack.depth(stack.queue) == 1 and dead_letters(stack) == []
    assert stored(stack, stack.source_bucket, image.key) == b"Error image"
    assert stored(stack, stack.final_bucket, image.result_key()) is None


def test_a_failing_image_is_dead_lettered_with_its_last_error_on_its_last_delivery(
        stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAX_RECEIVE_COUNT", "1")
    stack.queue_image(b"Error image")
    assert process_next() == drain.Outcome(poisoned=1)
    (dead,) = dead_letters(stack)
    assert dead["MessageAttributes"]["reason"]["StringValue"] == (
        "failed 1 time(s), last error RuntimeError: the model is overloaded")
    assert stack.depth(stack.queue) == 0


# --- the end of a round ------------------------------------------------------------------------
def detect_deadline_ms() -> int:
    """The least time left in which the drain still starts a detect call (the fake backend's)."""
    return int((fake_backend.FakeBackend.max_detect_seconds + drain.FINISH_SECONDS) * 1000)


def test_a_detect_call_that_could_outlast_the_function_is_not_started_and_its_message_goes_back(
        stack: Stack) -> None:
    """Received with time to spare, then the slot came too late: the image stays where it is, and
    the message is visible again at once, for the next round (not after the visibility timeout)."""
    image = image_of(stack.queue_image(b"normal image"))
    left = [300_000]
    settings = Settings.from_env()
    worker = drain.Drainer(settings, backend_from_settings(settings), EXECUTION, remaining_ms=lambda: left[0])
    (message,) = worker.receive()
    left[0] = detect_deadline_ms() - 1
    assert worker.process(message) == drain.Outcome(returned=1)
    assert stored(stack, stack.source_bucket, image.key) == b"normal image"
    assert stored(stack, stack.final_bucket, image.result_key()) is None
    (again,) = stack.sqs.receive_message(QueueUrl=stack.queue, WaitTimeSeconds=0,
                                         AttributeNames=["ApproximateReceiveCount"])["Messages"]
    assert again["MessageId"] == message["MessageId"] and again["Attributes"]["ApproximateReceiveCount"] == "2"


def test_a_timeout_too_short_for_one_image_fails_the_round_and_says_what_to_raise(
        stack: Stack, lambda_context: Any) -> None:
    """A round starts with its function's whole timeout: if one image cannot fit, the timeout is
    misconfigured. Taking nothing and ending would leave the queue full and the pipeline starting
    round after round (and hand-over after hand-over) for ever; failing stops the model at once."""
    for n in range(3):
        stack.queue_image(b"normal image", n=n)
    needed = fake_backend.FakeBackend.max_detect_seconds + drain.FINISH_SECONDS + drain.RECEIVE_LEAD_SECONDS
    lambda_context.get_remaining_time_in_millis = lambda: int(needed * 1000) - 1
    with pytest.raises(drain.TimeoutTooShort, match="raise the DrainFunction's Timeout"):
        drain.handler({"worker": 0, "execution": EXECUTION}, lambda_context)
    assert stack.depth(stack.queue) == 3


def test_a_round_with_time_drains_the_queue(stack: Stack, lambda_context: Any) -> None:
    for n in range(25):
        stack.queue_image(b"Anomalous image" if n % 5 == 0 else b"normal image", n=n)
    outcome = drain.handler({"worker": 0, "execution": EXECUTION}, lambda_context)
    assert outcome == drain.Outcome(processed=25, anomalous=5).__dict__
    assert stack.depth(stack.queue) == 0


def test_a_detect_call_is_bounded_by_its_client_timeouts_and_retries(moto: Moto) -> None:
    """The drain's deadline rests on these: two attempts of connect + read, and one backoff."""
    runtime = aws.client("sagemaker-runtime")
    assert (runtime.meta.config.retries["total_max_attempts"], runtime.meta.config.read_timeout) == (2, 20)
    assert SageMakerBackend.max_detect_seconds == aws.call_seconds(aws.DETECT_CONFIG) == 2 * (5 + 20) + 2
    assert drain.SAFETY_MARGIN_MS < 300_000 / 2  # most of a round's 300 s goes to work
