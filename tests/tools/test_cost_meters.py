"""Each charge of the cost model against small cases counted by hand: the billing rules, one function
call of each kind, and whole executions of the real state machine for one image and for ten.
"""
from __future__ import annotations

from dataclasses import replace

import pytest

from batchsight_tools.costmodel import meters
from batchsight_tools.costmodel.backends import PRESETS
from batchsight_tools.costmodel.deployment import serverless_deployment
from batchsight_tools.costmodel.edge import EdgeBatching
from batchsight_tools.costmodel.engine import Engine, backend_clock
from batchsight_tools.costmodel.gateway_charges import enqueued, uploaded
from batchsight_tools.costmodel.images import Images
from batchsight_tools.costmodel.pipeline import Pipeline, template_cloud_settings
from batchsight_tools.costmodel.prices import price_book
from batchsight_tools.costmodel.stack_charges import StackMeter
from batchsight_tools.costmodel.stack_shape import StackShape
from batchsight_tools.costmodel.usage import Usage

USD = price_book()
SHAPE = StackShape(memory_mb=1024, arch="x86_64", drain_memory_mb=1769)


def _q(usage: Usage, service: str, item: str) -> float:
    return usage.quantity(service, item)


# --- the billing rules --------------------------------------------------------------------------------

def test_lambda_bills_each_invocation_per_millisecond_and_its_requests() -> None:
    usage = Usage()
    meters.lambda_invocations(usage, "f", memory_mb=1024, seconds=0.0801, arch="x86_64", count=3)
    assert _q(usage, "Lambda", "f requests") == 3
    assert _q(usage, "Lambda", "f duration") == pytest.approx(3 * 0.081)  # 80.1 ms bills 81 ms each
    assert usage.bill().total == pytest.approx(3 * 0.0000002 + 0.243 * 0.0000166667)
    cold = Usage()
    meters.lambda_invocations(cold, "f", memory_mb=512, seconds=0.1, arch="arm64", init_seconds=0.8)
    assert _q(cold, "Lambda", "f duration") == pytest.approx(0.5 * 0.9)  # the INIT phase is billed too
    assert cold.bill().total == pytest.approx(0.0000002 + 0.45 * 0.0000133334)


def test_s3_tiers_sqs_chunks_dynamodb_units_and_list_pages() -> None:
    usage = Usage()
    for kind in ("PUT", "COPY", "LIST", "GET", "HEAD", "DELETE"):
        meters.s3_requests(usage, kind, "x", 1000)
    # PUT, COPY and LIST at 0.005 per 1,000; GET and HEAD at 0.0004; DELETE free
    assert usage.bill().total == pytest.approx(3 * 0.005 + 2 * 0.0004)
    assert [meters.list_pages(n) for n in (0, 1, 1000, 1001, 20_500)] == [1, 1, 1, 2, 21]
    sqs = Usage()
    meters.sqs_requests(sqs, "send", 2, payload_bytes=64 * 1024 + 1)  # a request over 64 KB is two
    assert _q(sqs, "SQS", "send") == 4
    table = Usage()
    meters.dynamodb_writes(table, "w", 1, item_bytes=1500)  # 2 units: per started KB
    meters.dynamodb_reads(table, "r", 1, item_bytes=5000)  # 2 units: per started 4 KB, consistent
    meters.dynamodb_reads(table, "e", 2, item_bytes=100, consistent=False)  # half a unit each
    assert (_q(table, "DynamoDB", "w"), _q(table, "DynamoDB", "r"), _q(table, "DynamoDB", "e")) == (2, 2, 1)


def test_every_price_has_its_unit_source_and_date() -> None:
    assert USD.region == "us-east-1" and USD.taken == "2026-12-04" and USD.hours_per_month == 730
    for price in USD.prices.values():
        assert price.source.startswith("https://aws.amazon.com/") and price.unit and price.usd >= 0
    assert {p.key for p in USD.uncertain()} >= {"sagemaker.data_processed_gb", "internet.data_out_gb"}
    assert USD.per_day("kms.key_month") == pytest.approx(24 / 730)
    with pytest.raises(KeyError, match="no price 'nope'"):
        USD.usd("nope")


# --- one call of each of our functions ------------------------------------------------------------------

def test_a_check_work_call_is_one_invocation_and_one_queue_read() -> None:
    meter = StackMeter(PRESETS["lambda"], Images(), SHAPE)
    assert meter.call("check_work", 10.0) == pytest.approx(0.8)  # the first is cold: Powertools imports
    assert meter.call("check_work", 11.0) == 0.0  # warm within five minutes
    assert meter.call("check_work", 11.0 + 301) == pytest.approx(0.8)  # idle past the warm window
    usage = meter.usage
    assert _q(usage, "Lambda", "check_work requests") == 3
    assert _q(usage, "Lambda", "check_work duration") == pytest.approx(3 * 0.08 + 2 * 0.8)
    assert _q(usage, "SQS", "GetQueueAttributes by CheckWork") == 3
    assert meter.metric_hours == set()  # the queues' depths are SQS's own metrics


def test_custom_metrics_are_what_the_functions_record_functions_publish() -> None:
    """Per line ImagesProcessed and Anomalies, for each line; the hosting metrics only for a backend
    billed while hosted; overload control's only when CheckWork publishes them."""
    lines = StackMeter(PRESETS["lambda"], Images(), SHAPE, lines=3)
    lines.drain_finished(10.0, 1, seconds=1.0, images=[0, 1])
    lines.call("model_control", 20.0, action="stop")
    lines.status_reported(30.0, draining=True, backlog=0)
    assert sorted(identity for _, identity in lines.metric_hours) == sorted(
        f"{name}[site=site][line=line {k}]" for name in ("ImagesProcessed", "Anomalies") for k in range(3))
    hosted = StackMeter(PRESETS["sagemaker"], Images(), SHAPE)
    hosted.drain_finished(10.0, 1, seconds=1.0, images=[])
    hosted.call("model_control", 3600.0, action="stop")
    hosted.status_reported(3700.0, draining=True, backlog=0, load_published=True)
    assert hosted.metric_hours == {(0, "HostedModelAgeMinutes"), (1, "ModelStops"), (1, "HostedModelMinutes"),
                                   *((1, name) for name in ("ArrivalRate", "DrainRate", "ScaleUnits", "Overloaded",
                                                            "BacklogMinutes", "HistoryEvents"))}


def test_a_lambda_backend_start_reads_the_index_and_the_package() -> None:
    meter = StackMeter(PRESETS["lambda"], Images(), SHAPE)
    meter.call("model_control", 0.0, action="start")  # cold: the index, the package.json, the model file
    meter.call("model_control", 2.0, action="start")  # warm (the first finished at 1.05 s): the index only
    assert _q(meter.usage, "S3", "GET of the model index and package") == 3 + 1
    hosted = StackMeter(PRESETS["sagemaker"], Images(), SHAPE)
    hosted.call("model_control", 0.0, action="start")  # CreateEndpoint: no S3, a free API call
    assert _q(hosted.usage, "S3", "GET of the model index and package") == 0


# --- whole executions of the real state machine ----------------------------------------------------------

def _one_batch(images: int, spec: Images) -> tuple[StackMeter, Pipeline]:
    """A cold stack, ``images`` messages visible at 0, one execution, the gateway's upload of them."""
    deployment, service = serverless_deployment(PRESETS["lambda"], spec, EdgeBatching(), template_cloud_settings())
    meter = StackMeter(PRESETS["lambda"], spec, SHAPE)
    engine = Engine()
    pipeline = Pipeline(engine, service, deployment.policy.cloud, meter=meter)
    for image in range(images):
        pipeline.queue.put(image, 0.0)
    uploaded(meter.usage, images)
    enqueued(meter.usage, images)
    pipeline.start_execution("gateway-1", {"v": 1, "trigger": "edge"})
    with backend_clock(engine):
        engine.run(limit=3600.0)
    return meter, pipeline


def test_one_batch_of_ten_images_counted_by_hand() -> None:
    """Ten images, the tenth anomalous (rate 0.1), on the lambda backend with a cold stack.

    Gateway: 10 PUT (the images), 1 SendMessageBatch (ten messages of 500 bytes fit one request).
    Execution: CheckWork plans one worker (ten messages fit one receive), so the states entered are
    IsHandOver, CheckWork, AnyWork, AcquireLock, LockAcquired, StartModel, IsHosted, RenewLock, Drain,
    DrainWorker (the one Map iteration), CheckRemaining, MoreWork, StopModel, ReleaseLock,
    CheckAfterRelease, WorkArrived, AnyDefects, NotifyDefects, Done: 19 transitions.
    Lambda: check_work x3 (CheckWork, CheckRemaining, CheckAfterRelease), model_lock x3 (acquire,
    renew, release), model_control x2 (start, stop), drain x1.
    SQS: GetQueueAttributes 1 per CheckWork call = 3; ReceiveMessage 1 (ten images) + 2 empty = 3;
    DeleteMessageBatch 1 (ten stored results).
    S3 by the drain: GET 10 images, PUT 10 results, PUT 1 mask, COPY 10 images, DELETE 10 (free),
    and in its cold function the package.json and the model file once = 2; by the start: GET the
    index, and in the cold function the package.json and the model file = 3.
    S3 by CheckWork: the pipeline status PUT by CheckRemaining and CheckAfterRelease (the first check
    sees images waiting and leaves the status to the execution that drains them) = 2.
    DynamoDB: 3 conditional writes by the lock, 1 by the stop (it renews the lease).
    SNS: 1 publish (one anomaly), and 1 KMS call for it.
    Drain time: a cold start of 3 s, ten images of 50 + 5 ms on its vCPU = 0.55 s, the long poll
    in flight meanwhile ends 0.45 s later, then the empty one of 1 s: 5.0 s at 1,769 MB.
    """
    meter, pipeline = _one_batch(10, Images(anomaly_rate=0.1))
    (outcome,) = pipeline.outcomes
    assert outcome.status == "SUCCEEDED" and outcome.transitions == 19 and outcome.visited("NotifyDefects")
    u = meter.usage
    expected = [
        ("S3", "PUT of the image by the gateway", 10), ("SQS", "SendMessageBatch by the gateway", 1),
        ("Step Functions", "state transitions", 19), ("Lambda", "check_work requests", 3),
        ("Lambda", "model_lock requests", 3), ("Lambda", "model_control requests", 2), ("Lambda", "drain requests", 1),
        ("SQS", "GetQueueAttributes by CheckWork", 3), ("SQS", "ReceiveMessage by the drain (empty ones too)", 3),
        ("SQS", "DeleteMessageBatch by the drain", 1), ("S3", "GET of the image by the drain", 10),
        ("S3", "GET of the package and model file by a cold drain", 2), ("S3", "PUT of the result", 10),
        ("S3", "PUT of the anomaly masks", 1), ("S3", "COPY of the image to the final bucket", 10),
        ("S3", "DELETE of the image from the source bucket", 10), ("S3", "GET of the model index and package", 3),
        ("S3", "PUT of the pipeline status", 2), ("DynamoDB", "model lock writes", 4),
        ("SNS", "defect notifications", 1),
        ("KMS", "SNS encryption of a notification", 1)]
    assert [(service, item, _q(u, service, item)) for service, item, _ in expected] == expected
    assert _q(u, "Lambda", "drain duration") == pytest.approx(1769 / 1024 * 5.0)
    bill = u.bill()
    assert bill.service("Step Functions") == pytest.approx(19 * 0.000025)
    assert bill.service("DynamoDB") == pytest.approx(4 * 0.000000625)


def test_one_image_counted_by_hand() -> None:
    """One normal image: no NotifyDefects (18 transitions), 3 receives (one with the image, two
    empty), 1 DeleteMessageBatch; 1 GET, 1 PUT, 1 COPY; the drain runs 3 s cold + 55 ms,
    0.945 s of the in-flight long poll, 1 s of the last one = 5.0 s."""
    meter, pipeline = _one_batch(1, Images(anomaly_rate=0.0))
    (outcome,) = pipeline.outcomes
    assert outcome.transitions == 18 and not outcome.visited("NotifyDefects")
    u = meter.usage
    assert _q(u, "SQS", "ReceiveMessage by the drain (empty ones too)") == 3
    assert _q(u, "SQS", "DeleteMessageBatch by the drain") == 1
    assert _q(u, "S3", "PUT of the result") == 1 and _q(u, "S3", "COPY of the image to the final bucket") == 1
    assert _q(u, "S3", "PUT of the anomaly masks") == 0 and _q(u, "SNS", "defect notifications") == 0
    assert _q(u, "Lambda", "drain duration") == pytest.approx(1769 / 1024 * 5.0)


def test_a_hosted_endpoint_bills_its_data_and_a_serverless_one_its_inference_too() -> None:
    """Per image of 200 KB with a 1.2 KB result: SageMaker processes 201.2 KB; the serverless
    endpoint also bills 2 GB x 50 ms of inference."""
    spec = Images(anomaly_rate=0.0)
    for name, inference in (("sagemaker", 0.0), ("sagemaker-serverless", 2 * 0.05)):
        meter = StackMeter(PRESETS[name], spec, SHAPE)
        meter.drain_finished(0.0, 1, seconds=1.0, images=[0, 1])
        assert _q(meter.usage, "SageMaker", "data processed by the endpoint") == pytest.approx(
            2 * 201_200 / 1024 ** 3)
        assert _q(meter.usage, "SageMaker", "serverless inference ") == pytest.approx(2 * inference)
        assert _q(meter.usage, "S3", "GET of the package and model file by a cold drain") == 0


def test_a_drain_moves_each_image_unless_it_was_uploaded_to_its_place() -> None:
    """Two images judged: a COPY and a DELETE each with ImageUpload=source-bucket, none with final-bucket;
    the GET of the image and the PUT of its result either way."""
    moved, in_place = StackMeter(PRESETS["lambda"], Images(), SHAPE), \
        StackMeter(PRESETS["lambda"], Images(), replace(SHAPE, images_moved=False))
    for meter in (moved, in_place):
        meter.drain_finished(10.0, 1, seconds=1.0, images=[0, 1])
    assert _q(moved.usage, "S3", "COPY of the image to the final bucket") == 2
    assert _q(moved.usage, "S3", "DELETE of the image from the source bucket") == 2
    items = {charge.line.item for charge in in_place.usage.bill().items()}
    assert not any("COPY" in item or "DELETE" in item for item in items)
    for usage in (moved.usage, in_place.usage):
        assert _q(usage, "S3", "GET of the image by the drain") == _q(usage, "S3", "PUT of the result") == 2
