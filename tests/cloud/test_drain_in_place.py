"""Drain with ImageUpload=final-bucket: images uploaded to their place next to their result.

SOURCE_BUCKET is then the final bucket (the template's Fn::If), and each message names the very
key its image belongs at. Nothing is copied or deleted; a redelivered message finds the result
stored and judges nothing again; a message pointing anywhere else in the final bucket is poison.
Real S3 and SQS (moto server).
"""
from __future__ import annotations

import json
from typing import Any

import pytest

from batchsight_pipeline.backends import backend_from_settings
from batchsight_pipeline.contracts import PoisonMessage, parse_message
from batchsight_pipeline.settings import Settings
from batchsight_tools.localcloud.template import evaluate_condition, load_template, resolve
from tests.cloud.moto_stack import Stack
from tests.cloud.test_drain import EXECUTION, dead_letters, drain, process_next, stored


@pytest.fixture
def in_place(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> Stack:
    monkeypatch.setenv("SOURCE_BUCKET", stack.final_bucket)
    return stack


def upload_in_place(stack: Stack, body: bytes, *, n: int = 0, key: str | None = None) -> dict[str, Any]:
    """An image at its final place and its message, as a gateway uploading to the final bucket sends them."""
    image_id = f"{n:064x}"
    key = key or f"results/s1/l1/d1/2026/11/23/{image_id}.jpg"
    stack.s3.put_object(Bucket=stack.final_bucket, Key=key, Body=body)
    message = {"v": 1, "bucket": stack.final_bucket, "key": key, "image_id": image_id, "site": "s1", "line": "l1",
               "device": "d1", "captured_at": "2026-11-23T10:00:00Z", "batch_id": "b-1", "file_name": f"{n}.jpg"}
    stack.sqs.send_message(QueueUrl=stack.queue, MessageBody=json.dumps(message))
    return message


def test_an_image_in_place_is_judged_where_it_lies_and_nothing_moves(in_place: Stack) -> None:
    message = upload_in_place(in_place, b"normal image")
    assert process_next() == drain.Outcome(processed=1)
    result_key = message["key"].replace(".jpg", ".json")
    document = json.loads(stored(in_place, in_place.final_bucket, result_key) or b"null")
    assert document["image"] == {"key": message["key"]}
    assert document["source"] == {"bucket": in_place.final_bucket, "key": message["key"]}
    assert stored(in_place, in_place.final_bucket, message["key"]) == b"normal image"
    listed = in_place.s3.list_objects_v2(Bucket=in_place.final_bucket)["Contents"]
    assert sorted(o["Key"] for o in listed) == sorted([message["key"], result_key]), "no copy anywhere"
    assert in_place.s3.list_objects_v2(Bucket=in_place.source_bucket)["KeyCount"] == 0
    assert in_place.depth(in_place.queue) == 0


def test_a_redelivery_finds_the_result_and_judges_nothing_again(in_place: Stack) -> None:
    """The image stays where it is, so the drain asks for the result before it judges a
    message SQS hands out again (a worker that stored the result and died before its delete)."""
    message = upload_in_place(in_place, b"normal image")
    settings = Settings.from_env()
    worker = drain.Drainer(settings, backend_from_settings(settings), "arn:first", remaining_ms=lambda: 300_000)
    (first,) = worker.receive()
    worker.process(first)  # its result is stored; its delete is never sent
    in_place.sqs.change_message_visibility(QueueUrl=in_place.queue, ReceiptHandle=first["ReceiptHandle"],
                                           VisibilityTimeout=0)
    result_key = message["key"].replace(".jpg", ".json")
    before = stored(in_place, in_place.final_bucket, result_key)
    assert process_next() == drain.Outcome(processed=1)
    after = stored(in_place, in_place.final_bucket, result_key)
    assert after == before and json.loads(after or b"{}")["execution"] == "arn:first", "judged once"
    assert json.loads(after or b"{}")["execution"] != EXECUTION
    assert in_place.depth(in_place.queue) == 0 and dead_letters(in_place) == []


@pytest.mark.parametrize("key", ["results/s1/l1/d2/2026/11/23/{id}.jpg", "results/s1/l1/d1/2026/11/24/{id}.jpg",
                                 "incoming/s1/l1/d1/2026/11/23/{id}.jpg"],
                         ids=["another device's place", "another day's place", "the source layout"])
def test_a_message_pointing_elsewhere_in_the_final_bucket_is_poison(in_place: Stack, key: str) -> None:
    message = upload_in_place(in_place, b"normal image", key=key.format(id=f"{0:064x}"))
    with pytest.raises(PoisonMessage, match="is not its image's place"):
        parse_message(json.dumps(message), source_bucket=in_place.final_bucket, final_bucket=in_place.final_bucket)
    assert process_next() == drain.Outcome(poisoned=1)
    (letter,) = dead_letters(in_place)
    assert "is not its image's place" in letter["MessageAttributes"]["reason"]["StringValue"]


@pytest.mark.parametrize("upload, bucket", [("source-bucket", "SourceBucket"), ("final-bucket", "FinalBucket")])
def test_the_template_gives_functions_and_gateways_the_same_bucket_to_upload_to(upload: str, bucket: str) -> None:
    """The functions' SOURCE_BUCKET and the output the gateways copy into aws.source_bucket."""
    template = load_template()
    parameters = {**{n: str(p.get("Default", "")) for n, p in template["Parameters"].items()}, "ImageUpload": upload}
    conditions = template["Conditions"]

    def lookup(name: str, _attribute: str | None) -> str:
        return parameters.get(name, name)

    def condition(name: str) -> bool:
        return evaluate_condition(conditions[name], lookup, conditions)

    environment = template["Globals"]["Function"]["Environment"]["Variables"]
    assert resolve(environment["SOURCE_BUCKET"], lookup, condition) == bucket
    assert resolve(template["Outputs"]["SourceBucketName"]["Value"], lookup, condition) == bucket
    assert resolve(environment["FINAL_BUCKET"], lookup, condition) == "FinalBucket"
