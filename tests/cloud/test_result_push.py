"""The drain pushes each result to its gateway's own queue, on real S3 and SQS (moto server).

The S3 result is the record: a push that cannot be made (no queue, a document too big for
SQS, a queue deleted under the drain) leaves the image processed and its result in S3, where
the gateway's fallback listing finds it.
"""
from __future__ import annotations

import json
from typing import Any

import pytest

from batchsight_pipeline.contracts import parse_message
from batchsight_pipeline.result_push import MAX_BATCH_BYTES, ResultPush, queue_name
from batchsight_tools.stack import function
from tests.cloud.moto_stack import Stack, unique
from tests.cloud.test_drain import process_next

drain = function("drain")
EXECUTION = "arn:aws:states:us-east-1:123456789012:execution:batch:run-1"


@pytest.fixture
def prefix(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> str:
    """The stack's result queue prefix, of this test's own (queue URLs are cached per process)."""
    name = unique("stack-results")
    monkeypatch.setenv("RESULT_QUEUE_PREFIX", name)
    return name


def device_queue(stack: Stack, prefix: str) -> str:
    """The queue the gateway d1 (every image of Stack.queue_image) creates at its start."""
    return str(stack.sqs.create_queue(QueueName=f"{prefix}-d1")["QueueUrl"])


def pushed(stack: Stack, url: str) -> list[dict[str, Any]]:
    bodies: list[dict[str, Any]] = []
    while messages := stack.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
        bodies += [json.loads(m["Body"]) for m in messages]
        stack.sqs.delete_message_batch(QueueUrl=url, Entries=[
            {"Id": str(n), "ReceiptHandle": m["ReceiptHandle"]} for n, m in enumerate(messages)])
    return bodies


def test_a_result_reaches_its_gateways_queue_with_its_document(stack: Stack, prefix: str) -> None:
    url = device_queue(stack, prefix)
    image = parse_message(json.dumps(stack.queue_image(b"normal image")), source_bucket=stack.source_bucket,
                          final_bucket=stack.final_bucket)
    assert process_next() == drain.Outcome(processed=1)
    (body,) = pushed(stack, url)
    stored = json.loads(stack.s3.get_object(Bucket=stack.final_bucket, Key=image.result_key())["Body"].read())
    assert body == {"v": 1, "image_id": image.image_id, "key": image.result_key(), "document": stored}


def test_a_whole_drain_sends_in_batches_of_ten_and_leaves_none_behind(stack: Stack, prefix: str,
                                                                        lambda_context: Any) -> None:
    url = device_queue(stack, prefix)
    for n in range(23):
        stack.queue_image(b"normal image", n=n)
    assert drain.handler({"execution": EXECUTION}, lambda_context)["processed"] == 23
    assert sorted(int(b["image_id"], 16) for b in pushed(stack, url)) == list(range(23))


def test_without_a_queue_the_image_is_processed_and_its_result_stays_in_s3(stack: Stack, prefix: str) -> None:
    """The gateway never started with push: nothing to send to, nothing failed."""
    image = parse_message(json.dumps(stack.queue_image(b"normal image")), source_bucket=stack.source_bucket,
                          final_bucket=stack.final_bucket)
    assert process_next() == drain.Outcome(processed=1)
    assert stack.s3.head_object(Bucket=stack.final_bucket, Key=image.result_key())
    assert stack.depth(stack.queue) == 0


def test_a_queue_deleted_under_the_drain_fails_no_image(stack: Stack, prefix: str) -> None:
    """The URL cached from an earlier send points at nothing: the send fails, the image does not."""
    url = device_queue(stack, prefix)
    stack.queue_image(b"normal image", n=1)
    process_next()
    stack.sqs.delete_queue(QueueUrl=url)
    image = parse_message(json.dumps(stack.queue_image(b"normal image", n=2)), source_bucket=stack.source_bucket,
                          final_bucket=stack.final_bucket)
    assert process_next() == drain.Outcome(processed=1)
    assert stack.s3.head_object(Bucket=stack.final_bucket, Key=image.result_key())


def test_a_document_too_big_for_sqs_is_pushed_as_its_key(stack: Stack, prefix: str) -> None:
    url = device_queue(stack, prefix)
    image = parse_message(json.dumps(stack.queue_image(b"normal image")), source_bucket=stack.source_bucket,
                          final_bucket=stack.final_bucket)
    small, big = {"result": {"IsAnomalous": False}}, {"result": {"note": "x" * MAX_BATCH_BYTES}}
    push = ResultPush(prefix, stack.sqs)
    push.add(image, small)
    push.add(image, big)
    push.close()
    assert [b.get("document") for b in pushed(stack, url)] == [small, None]


def test_a_device_id_no_queue_can_be_named_after_is_skipped(stack: Stack, prefix: str) -> None:
    assert queue_name(prefix, "gateway.7") is None
    assert queue_name("p" * 75, "gateway7") is None
    assert queue_name(prefix, "gateway_7") == f"{prefix}-gateway_7"
