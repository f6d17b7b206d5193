"""The cloud pipeline: the real ASL file executed by moto, Lambdas in-process, local backend."""
from __future__ import annotations

import hashlib
import json
import time
from datetime import datetime, UTC

import jsonschema
import pytest

from batchsight_tools.synth import generate
from tests.support import CloudFixture, load_schema, report_reliability

pytestmark = pytest.mark.integration


def _queue_image(cloud: CloudFixture, data: bytes, *, ext: str = "jpg", name: str = "x.jpg",
                 upload: bool = True) -> dict[str, str]:
    image_id = hashlib.sha256(data).hexdigest()
    key = f"incoming/s1/l1/d1/2026/11/23/{image_id}.{ext}"
    if upload:
        cloud.client("s3").put_object(Bucket=cloud.outputs.source_bucket, Key=key, Body=data)
    message = {"v": 1, "bucket": cloud.outputs.source_bucket, "key": key, "image_id": image_id,
               "site": "s1", "line": "l1", "device": "d1",
               "captured_at": datetime(2026, 11, 23, 10, tzinfo=UTC).isoformat().replace("+00:00", "Z"),
               "batch_id": "b-1", "file_name": name}
    jsonschema.validate(message, load_schema("image_message"))
    cloud.client("sqs").send_message(QueueUrl=cloud.outputs.queue_url, MessageBody=json.dumps(message))
    return message


def _results(cloud: CloudFixture) -> list[dict]:
    s3 = cloud.client("s3")
    listed = s3.list_objects_v2(Bucket=cloud.outputs.final_bucket, Prefix="results/").get("Contents", [])
    return [json.loads(s3.get_object(Bucket=cloud.outputs.final_bucket, Key=o["Key"])["Body"].read())
            for o in listed if o["Key"].endswith(".json")]


def _dead_letters(cloud: CloudFixture) -> list[dict]:
    # VisibilityTimeout=0: looking must not hide them from the next test's clean-up
    response = cloud.client("sqs").receive_message(
        QueueUrl=cloud.outputs.dead_letter_queue_url, MaxNumberOfMessages=10,
        MessageAttributeNames=["All"], WaitTimeSeconds=0, VisibilityTimeout=0)
    return response.get("Messages", [])


def test_empty_queue_never_starts_the_model(local_cloud: CloudFixture) -> None:
    execution = local_cloud.run_execution("empty-queue")
    assert execution["status"] == "SUCCEEDED"
    assert local_cloud.hosted_intervals() == []


def _subscribe_queue(cloud: CloudFixture) -> str:
    """An SQS queue on the notification topic, standing in for the engineers' e-mail."""
    sqs, sns = cloud.client("sqs"), cloud.client("sns")
    url = sqs.create_queue(QueueName=f"notifications-{time.time_ns()}")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=cloud.outputs.extra["NotificationTopicArn"], Protocol="sqs", Endpoint=arn)
    return url


def test_batch_is_drained_with_one_result_per_image_and_model_stopped(local_cloud: CloudFixture, tmp_path) -> None:
    notifications = _subscribe_queue(local_cloud)
    frames = generate(tmp_path, count=12, size=128, seed=5)
    messages = [_queue_image(local_cloud, f.path.read_bytes(), ext=f.path.suffix[1:], name=f.path.name)
                for f in frames]
    execution = local_cloud.run_execution("happy-path")
    assert execution["status"] == "SUCCEEDED", execution.get("cause")
    results = _results(local_cloud)
    assert sorted(r["image_id"] for r in results) == sorted(m["image_id"] for m in messages)
    schema = load_schema("result_document")
    for document in results:
        jsonschema.validate(document, schema)
        assert document["execution"].endswith(":happy-path")
    # images moved: gone from the source bucket, next to their result in the final bucket
    source = local_cloud.client("s3").list_objects_v2(Bucket=local_cloud.outputs.source_bucket)
    assert source.get("KeyCount", 0) == 0
    assert len(local_cloud.hosted_intervals()) == 1
    anomalous = sum(r["result"]["IsAnomalous"] for r in results)
    assert anomalous > 0, "the generated set has defects"
    received = local_cloud.client("sqs").receive_message(QueueUrl=notifications, WaitTimeSeconds=1)
    (note,) = received["Messages"]
    assert f"found {anomalous} anomalous image(s) in 12 processed" in json.loads(note["Body"])["Message"]


def test_poison_messages_reach_the_dlq_with_a_reason_and_the_rest_succeed(local_cloud: CloudFixture, tmp_path) -> None:
    good = generate(tmp_path, count=3, size=128, seed=9)
    for frame in good:
        _queue_image(local_cloud, frame.path.read_bytes(), ext=frame.path.suffix[1:])
    _queue_image(local_cloud, b"not an image at all", name="text.jpg")
    _queue_image(local_cloud, b"\xff\xd8\xff gone", name="gone.jpg", upload=False)
    local_cloud.client("sqs").send_message(QueueUrl=local_cloud.outputs.queue_url, MessageBody="{not json")
    execution = local_cloud.run_execution("poison")
    assert execution["status"] == "SUCCEEDED", execution.get("cause")
    assert len(_results(local_cloud)) == 3
    reasons = sorted(m["MessageAttributes"]["reason"]["StringValue"] for m in _dead_letters(local_cloud))
    assert len(reasons) == 3
    assert any("does not exist" in r for r in reasons)
    assert any("not JSON" in r for r in reasons)
    report_reliability("cloud-poison-messages", dropped=6, accounted=len(_results(local_cloud)) + len(reasons),
                       duplicates=0, recover_s=None)


def test_redelivered_message_overwrites_its_result(local_cloud: CloudFixture, tmp_path) -> None:
    frame = generate(tmp_path, count=1, size=128, seed=11)[0]
    message = _queue_image(local_cloud, frame.path.read_bytes(), ext=frame.path.suffix[1:])
    local_cloud.client("sqs").send_message(QueueUrl=local_cloud.outputs.queue_url,
                                           MessageBody=json.dumps(message))
    execution = local_cloud.run_execution("redelivery")
    assert execution["status"] == "SUCCEEDED", execution.get("cause")
    assert [r["image_id"] for r in _results(local_cloud)] == [message["image_id"]]
    assert _dead_letters(local_cloud) == []
    report_reliability("cloud-redelivery", dropped=1, accounted=1, duplicates=0, recover_s=None)


def test_concurrent_executions_host_the_model_once(local_cloud: CloudFixture, tmp_path) -> None:
    frames = generate(tmp_path, count=8, size=128, seed=13)
    messages = [_queue_image(local_cloud, f.path.read_bytes(), ext=f.path.suffix[1:]) for f in frames]
    arns = [local_cloud.start_execution(f"overlap-{n}") for n in range(3)]
    outcomes = [local_cloud.wait_execution(arn) for arn in arns]
    assert all(o["status"] == "SUCCEEDED" for o in outcomes), [o.get("cause") for o in outcomes]
    assert len(local_cloud.hosted_intervals()) == 1, "the model must start once for overlapping triggers"
    assert sorted(r["image_id"] for r in _results(local_cloud)) == sorted(m["image_id"] for m in messages)
    assert local_cloud.lock_owner() is None, "the lock is released at the end"
    report_reliability("cloud-concurrent-executions", dropped=len(frames), accounted=len(_results(local_cloud)),
                       duplicates=len(local_cloud.hosted_intervals()) - 1, recover_s=None)


def test_failed_hosting_stops_the_model_and_releases_the_lock(local_cloud: CloudFixture, tmp_path) -> None:
    """A model file that cannot be loaded: StartModel fails, the execution fails cleanly."""
    frame = generate(tmp_path, count=1, size=128, seed=17)[0]
    _queue_image(local_cloud, frame.path.read_bytes(), ext=frame.path.suffix[1:])
    hidden = local_cloud.model_path.with_suffix(".hidden")
    local_cloud.model_path.rename(hidden)
    try:
        execution = local_cloud.run_execution("hosting-fails")
    finally:
        hidden.rename(local_cloud.model_path)
    assert execution["status"] == "FAILED"
    assert execution["error"] == "BatchFailed"
    assert local_cloud.lock_owner() is None
    assert local_cloud.hosting_state() == "STOPPED"
    _drain_queue_for_next_test(local_cloud)
    report_reliability("cloud-hosting-fails", dropped=1, accounted=len(_results(local_cloud)), duplicates=0,
                       recover_s=None)


def _drain_queue_for_next_test(cloud: CloudFixture) -> None:
    run = cloud.run_execution("cleanup-after-failure")
    assert run["status"] == "SUCCEEDED"


def _invoke(cloud: CloudFixture, function: str) -> dict:
    response = cloud.client("lambda").invoke(FunctionName=f"batchsight-{function}", Payload=b"{}")
    assert "FunctionError" not in response, response["Payload"].read()
    answer = json.loads(response["Payload"].read())
    return answer["default"] if function == "ReaperFunction" else answer  # the reaper answers per model route


def test_reaper_stops_a_model_whose_execution_was_stopped_by_hand(local_cloud: CloudFixture, tmp_path) -> None:
    frame = generate(tmp_path, count=1, size=128, seed=19)[0]
    _queue_image(local_cloud, frame.path.read_bytes(), ext=frame.path.suffix[1:])
    assert _invoke(local_cloud, "ReaperFunction")["action"] == "none"
    arn = local_cloud.start_execution("aborted", {"v": 1, "trigger": "manual"})
    deadline = time.monotonic() + 30
    while local_cloud.hosting_state() == "STOPPED" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _invoke(local_cloud, "ReaperFunction")["action"] == "none", "the owner is running: hands off"
    local_cloud.client("stepfunctions").stop_execution(executionArn=arn, error="Operator", cause="stopped by hand")
    assert local_cloud.wait_execution(arn)["status"] == "ABORTED"
    outcome = _invoke(local_cloud, "ReaperFunction")
    assert outcome["action"] == "stopped"
    assert local_cloud.hosting_state() == "STOPPED"
    assert local_cloud.lock_owner() is None
    assert local_cloud.run_execution("after-reap")["status"] == "SUCCEEDED"  # the image is still processed
    assert len(_results(local_cloud)) == 1
    report_reliability("cloud-execution-stopped-reaper", dropped=1, accounted=1, duplicates=0, recover_s=None)


def test_failing_message_is_retried_a_bounded_number_of_times_then_dead_lettered_with_its_reason(
        local_cloud: CloudFixture, tmp_path) -> None:
    """An S3 error that never clears (the upload was archived to Glacier by a lifecycle rule, so
    GetObject answers InvalidObjectState): 3 deliveries with backoff, then the DLQ."""
    frame = generate(tmp_path, count=1, size=128, seed=23)[0]
    good = _queue_image(local_cloud, frame.path.read_bytes(), ext=frame.path.suffix[1:])
    broken = {**good, "image_id": "f" * 64, "key": good["key"].replace(good["image_id"], "f" * 64)}
    local_cloud.client("s3").put_object(Bucket=broken["bucket"], Key=broken["key"], Body=b"archived",
                                        StorageClass="GLACIER")
    local_cloud.client("sqs").send_message(QueueUrl=local_cloud.outputs.queue_url, MessageBody=json.dumps(broken))
    execution = local_cloud.run_execution("bounded-retries", timeout=120)
    assert execution["status"] == "SUCCEEDED", execution.get("cause")
    assert [r["image_id"] for r in _results(local_cloud)] == [good["image_id"]]
    (dead,) = _dead_letters(local_cloud)
    reason = dead["MessageAttributes"]["reason"]["StringValue"]
    assert reason.startswith("failed 3 time(s)") and "InvalidObjectState" in reason
    report_reliability("cloud-error-never-clears", dropped=2, accounted=2, duplicates=0, recover_s=None)
