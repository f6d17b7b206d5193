"""The sagemaker backend: lifecycle against moto, InvokeEndpoint against botocore's Stubber.

moto runs Create/Describe/DeleteEndpoint (endpoints are InService at once) but answers
InvokeEndpoint with canned bodies and fails on binary bodies, so detect is tested with a
Stubber on a real sagemaker-runtime client (it checks requests and responses against the
real API shapes) and the response mapping as a pure function with real-shaped bodies.
"""
from __future__ import annotations

import base64
import io
import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.response import StreamingBody
from botocore.stub import Stubber
from moto import mock_aws

from batchsight_pipeline.backends.base import FAILED, HOSTED, STARTING, STOPPED, ModelRejectedImage
from batchsight_pipeline.backends.sagemaker import (
    MAX_PAYLOAD_BYTES,
    ModelBusy,
    SageMakerBackend,
    UnexpectedModelResponse,
    map_response,
)
from batchsight_pipeline.settings import SettingsError
from datetime import UTC

ENDPOINT, CONFIG = "batchsight-model", "batchsight-model-config"
ACCOUNT = "123456789012"
ARN = f"arn:aws:sagemaker:us-east-1:{ACCOUNT}:endpoint/{ENDPOINT}"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 16
JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 64


@pytest.fixture(autouse=True)
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_SAGEMAKER", "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME",
                 "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")


_SESSION: list[boto3.session.Session] = []


def session() -> boto3.session.Session:
    """One session for the module: it caches the loaded API models, so clients are cheap."""
    if not _SESSION:
        _SESSION.append(boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing",
                                              region_name="us-east-1"))
    return _SESSION[0]


@pytest.fixture
def moto_sagemaker() -> Iterator[Any]:
    """A moto SageMaker with a model and the endpoint config the stack would deploy."""
    with mock_aws():
        client = session().client("sagemaker")
        client.create_model(ModelName="batchsight-model",
                            ExecutionRoleArn=f"arn:aws:iam::{ACCOUNT}:role/batchsight-sagemaker",
                            PrimaryContainer={"Image": f"{ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com/m:1"})
        client.create_endpoint_config(EndpointConfigName=CONFIG, ProductionVariants=[{
            "VariantName": "AllTraffic", "ModelName": "batchsight-model",
            "InitialInstanceCount": 1, "InstanceType": "ml.m5.large"}])
        yield client


def backend(sagemaker: Any = None, runtime: Any = None) -> SageMakerBackend:
    return SageMakerBackend(endpoint_name=ENDPOINT, endpoint_config_name=CONFIG, sagemaker=sagemaker,
                            runtime=runtime, start_timeout_seconds=600)


def stubbed(service: str) -> tuple[Any, Stubber]:
    client = session().client(service)
    return client, Stubber(client)


def body(document: Any) -> StreamingBody:
    raw = document if isinstance(document, bytes) else json.dumps(document).encode()
    return StreamingBody(io.BytesIO(raw), len(raw))


# --- lifecycle against moto ---------------------------------------------------------------

def test_lifecycle_create_describe_delete(moto_sagemaker: Any) -> None:
    b = backend(moto_sagemaker)
    state = b.start(run_token="run-1")
    assert state.status == STARTING and state.model_id == ENDPOINT and state.run_token == "run-1"
    assert moto_sagemaker.describe_endpoint(EndpointName=ENDPOINT)["EndpointConfigName"] == CONFIG
    assert b.status(state).status == HOSTED  # moto: InService at once
    assert b.stop().status == STOPPED
    assert b.status(state).status == STOPPED
    assert moto_sagemaker.list_endpoints()["Endpoints"] == []


def test_stop_when_no_endpoint_is_a_no_op(moto_sagemaker: Any) -> None:
    b = backend(moto_sagemaker)
    assert b.stop().status == STOPPED
    assert b.stop().status == STOPPED
    assert b._describe() == (STOPPED, "no endpoint")


def test_start_with_a_missing_endpoint_config_fails_loudly(moto_sagemaker: Any) -> None:
    b = SageMakerBackend(endpoint_name=ENDPOINT, endpoint_config_name="nope", sagemaker=moto_sagemaker,
                         start_timeout_seconds=600)
    with pytest.raises(ClientError, match="Could not find endpoint.config"):
        b.start(run_token="run-1")


# --- control-plane edge cases against the real API shapes (Stubber) ---------------------------

def test_start_when_endpoint_already_exists_reports_its_status() -> None:
    client, stub = stubbed("sagemaker")
    stub.add_client_error("create_endpoint", "ValidationException",
                          f'Cannot create already existing endpoint "{ARN}".', 400,
                          expected_params={"EndpointName": ENDPOINT, "EndpointConfigName": CONFIG})
    stub.add_response("describe_endpoint", describe("InService"), {"EndpointName": ENDPOINT})
    with stub:
        assert backend(client).start(run_token="run-2").status == HOSTED
    stub.assert_no_pending_responses()


def test_start_while_previous_endpoint_is_deleting_asks_for_a_retry() -> None:
    client, stub = stubbed("sagemaker")
    stub.add_client_error("create_endpoint", "ValidationException",
                          f'Cannot create already existing endpoint "{ARN}".', 400)
    stub.add_response("describe_endpoint", describe("Deleting"))
    with stub, pytest.raises(ModelBusy, match="Deleting"):
        backend(client).start(run_token="run-3")


def test_start_over_a_failed_endpoint_raises_with_its_reason() -> None:
    client, stub = stubbed("sagemaker")
    stub.add_client_error("create_endpoint", "ValidationException",
                          f'Cannot create already existing endpoint "{ARN}".', 400)
    stub.add_response("describe_endpoint", describe("Failed", "image not found in ECR"))
    with stub, pytest.raises(RuntimeError, match="image not found in ECR"):
        backend(client).start(run_token="run-4")


def describe(status: str, reason: str = "") -> dict[str, Any]:
    from datetime import datetime

    now = datetime.now(UTC)
    answer = {"EndpointName": ENDPOINT, "EndpointArn": ARN, "EndpointConfigName": CONFIG,
              "EndpointStatus": status, "CreationTime": now, "LastModifiedTime": now}
    if reason:
        answer["FailureReason"] = reason
    return answer


@pytest.mark.parametrize(("raw", "expected"), [
    ("Creating", STARTING), ("Updating", STARTING), ("SystemUpdating", STARTING),
    ("RollingBack", STARTING), ("InService", HOSTED), ("Deleting", STOPPED),
    ("OutOfService", FAILED), ("UpdateRollbackFailed", FAILED),
])
def test_describe_endpoint_status_mapping(raw: str, expected: str) -> None:
    client, stub = stubbed("sagemaker")
    stub.add_response("describe_endpoint", describe(raw), {"EndpointName": ENDPOINT})
    with stub:
        status, reason = backend(client)._describe()
    assert status == expected
    if expected == FAILED:
        assert raw in reason


def test_failed_endpoint_reports_failure_reason() -> None:
    client, stub = stubbed("sagemaker")
    stub.add_response("describe_endpoint", describe("Failed", "insufficient capacity for ml.g5"))
    with stub:
        assert backend(client)._describe() == (FAILED, "insufficient capacity for ml.g5")


def test_missing_endpoint_is_stopped() -> None:
    client, stub = stubbed("sagemaker")
    stub.add_client_error("describe_endpoint", "ValidationException", f'Could not find endpoint "{ARN}".', 400)
    with stub:
        assert backend(client)._describe()[0] == STOPPED


def test_stop_of_a_creating_endpoint_is_retried_not_forgotten() -> None:
    """SageMaker cannot delete an endpoint while it is Creating: never report that as stopped."""
    client, stub = stubbed("sagemaker")
    stub.add_client_error("delete_endpoint", "ValidationException",
                          f'Cannot delete endpoint "{ARN}" while it is in Creating status.', 400)
    stub.add_response("describe_endpoint", describe("Creating"))
    with stub, pytest.raises(ModelBusy, match="Creating"):
        backend(client).stop()


def test_stop_of_a_deleting_endpoint_is_fine() -> None:
    client, stub = stubbed("sagemaker")
    stub.add_client_error("delete_endpoint", "ValidationException", "endpoint is being deleted", 400)
    stub.add_response("describe_endpoint", describe("Deleting"))
    with stub:
        assert backend(client).stop().status == STOPPED


def test_stop_passes_throttling_through() -> None:
    client, stub = stubbed("sagemaker")
    stub.add_client_error("delete_endpoint", "ThrottlingException", "Rate exceeded", 400)
    with stub, pytest.raises(ClientError, match="Rate exceeded"):
        backend(client).stop()


# --- detect: InvokeEndpoint against the real sagemaker-runtime shape (Stubber) ---------------

def invoke_params(image: bytes, content_type: str) -> dict[str, Any]:
    return {"EndpointName": ENDPOINT, "Body": image, "ContentType": content_type, "Accept": "application/json"}


def test_detect_end_to_end_with_a_lookout_shaped_answer() -> None:
    mask = PNG + b"mask"
    answer = {"DetectAnomalyResult": {
        "Source": {"Type": "direct"}, "IsAnomalous": True, "Confidence": 0.97,
        "Anomalies": [{"Name": "background", "PixelAnomaly": {"TotalPercentageArea": 0.9, "Color": "#FFFFFF"}},
                      {"Name": "scratch", "PixelAnomaly": {"TotalPercentageArea": 0.1, "Color": "#FF0000"}}],
        "AnomalyMask": base64.b64encode(mask).decode()}}
    runtime, stub = stubbed("sagemaker-runtime")
    stub.add_response("invoke_endpoint", {"Body": body(answer), "ContentType": "application/json",
                                          "InvokedProductionVariant": "AllTraffic"},
                      invoke_params(JPEG, "image/jpeg"))
    with stub:
        result = backend(runtime=runtime).detect(JPEG, content_type="image/jpeg")
    stub.assert_no_pending_responses()
    assert result.pop("_mask_png") == mask
    assert result == {"Source": {"Type": "direct"}, "IsAnomalous": True, "Confidence": 0.97,
                      "Anomalies": answer["DetectAnomalyResult"]["Anomalies"]}
    json.dumps(result)


def test_detect_end_to_end_with_a_generic_answer() -> None:
    runtime, stub = stubbed("sagemaker-runtime")
    stub.add_response("invoke_endpoint", {"Body": body({"pred_label": 0, "pred_score": 0.2}),
                                          "ContentType": "application/json"},
                      invoke_params(PNG, "image/png"))
    with stub:
        result = backend(runtime=runtime).detect(PNG, content_type="image/png")
    assert result == {"Source": {"Type": "direct"}, "IsAnomalous": False, "Confidence": pytest.approx(0.8)}


def test_detect_refuses_an_image_over_6_mib_before_calling() -> None:
    runtime, stub = stubbed("sagemaker-runtime")  # no responses queued: any call would fail
    with stub, pytest.raises(ModelRejectedImage, match="6 MiB"):
        backend(runtime=runtime).detect(JPEG + b"\x00" * MAX_PAYLOAD_BYTES, content_type="image/jpeg")
    with stub, pytest.raises(ModelRejectedImage, match="content type"):
        backend(runtime=runtime).detect(JPEG, content_type="image/gif")


def test_detect_accepts_exactly_6_mib() -> None:
    image = JPEG + b"\x00" * (MAX_PAYLOAD_BYTES - len(JPEG))
    runtime, stub = stubbed("sagemaker-runtime")
    stub.add_response("invoke_endpoint", {"Body": body({"is_anomalous": True, "score": 0.9})},
                      invoke_params(image, "image/jpeg"))
    with stub:
        assert backend(runtime=runtime).detect(image, content_type="image/jpeg")["IsAnomalous"] is True


@pytest.mark.parametrize(("code", "status", "message", "fields"), [
    ("ModelError", 424, "Received client error (400) from primary", {"OriginalStatusCode": 400,
                                                                     "OriginalMessage": "cannot decode image"}),
    ("ModelError", 424, "Received client error (413) from primary", {"OriginalStatusCode": 413}),
    ("ValidationError", 400, "1 validation error detected: Value at 'body' failed to satisfy constraint", {}),
])
def test_payload_errors_are_poison(code: str, status: int, message: str, fields: dict[str, Any]) -> None:
    runtime, stub = stubbed("sagemaker-runtime")
    stub.add_client_error("invoke_endpoint", code, message, status, modeled_fields=fields or None)
    with stub, pytest.raises(ModelRejectedImage):
        backend(runtime=runtime).detect(JPEG, content_type="image/jpeg")


@pytest.mark.parametrize(("code", "status", "message", "fields"), [
    ("ModelError", 424, "Received server error (500) from primary", {"OriginalStatusCode": 500}),
    ("ValidationError", 400, f"Endpoint {ENDPOINT} of account {ACCOUNT} not found.", {}),
    ("ThrottlingException", 400, "Rate exceeded", {}),
    ("ServiceUnavailable", 503, "Service is unavailable", {}),
    ("InternalFailure", 500, "Internal failure", {}),
    ("ModelNotReadyException", 429, "Model is not ready", {}),
])
def test_transient_and_endpoint_errors_are_redelivered(code: str, status: int, message: str,
                                                       fields: dict[str, Any]) -> None:
    runtime, stub = stubbed("sagemaker-runtime")
    stub.add_client_error("invoke_endpoint", code, message, status, modeled_fields=fields or None)
    with stub, pytest.raises(ClientError) as raised:
        backend(runtime=runtime).detect(JPEG, content_type="image/jpeg")
    assert not isinstance(raised.value, ModelRejectedImage)


def test_unexpected_answer_is_a_clear_error_not_poison() -> None:
    runtime, stub = stubbed("sagemaker-runtime")
    stub.add_response("invoke_endpoint", {"Body": body({"predictions": [[0.1, 0.9]]})})
    with stub, pytest.raises(UnexpectedModelResponse, match="neither a DetectAnomalyResult"):
        backend(runtime=runtime).detect(JPEG, content_type="image/jpeg")


# --- response mapping (pure function) ---------------------------------------------------------

def test_map_bare_lookout_shape() -> None:
    raw = {"Source": {"Type": "direct"}, "IsAnomalous": False, "Confidence": 0.88}
    assert map_response(json.dumps(raw).encode()) == raw


def test_map_lookout_shape_without_source_gets_direct() -> None:
    assert map_response(b'{"IsAnomalous": true, "Confidence": 1}') == {
        "Source": {"Type": "direct"}, "IsAnomalous": True, "Confidence": 1.0}


def test_map_drops_unknown_keys_and_keeps_anomalies() -> None:
    raw = {"DetectAnomalyResult": {"IsAnomalous": True, "Confidence": 0.6, "ModelLatencyMs": 12,
                                   "Anomalies": [{"Name": "dent"}]}}
    assert map_response(json.dumps(raw)) == {"Source": {"Type": "direct"}, "IsAnomalous": True,
                                             "Confidence": 0.6, "Anomalies": [{"Name": "dent"}]}


@pytest.mark.parametrize(("answer", "anomalous", "confidence"), [
    ({"is_anomalous": True, "score": 0.9}, True, 0.9),
    ({"is_anomalous": False, "score": 0.1}, False, 0.9),
    ({"pred_label": "Anomalous", "pred_score": 0.75}, True, 0.75),
    ({"pred_label": "normal", "pred_score": 0.25}, False, 0.75),
    ({"pred_label": 1, "confidence": 0.6}, True, 0.6),
    ({"pred_label": False, "confidence": 0.6}, False, 0.6),
])
def test_map_generic_answers(answer: dict[str, Any], anomalous: bool, confidence: float) -> None:
    result = map_response(json.dumps(answer).encode())
    assert result == {"Source": {"Type": "direct"}, "IsAnomalous": anomalous,
                      "Confidence": pytest.approx(confidence)}


@pytest.mark.parametrize("raw", [
    b"not json",
    b"[0.1, 0.9]",
    b'{"score": 0.5}',
    b'{"is_anomalous": true}',
    b'{"is_anomalous": "maybe", "score": 0.5}',
    b'{"pred_label": 2, "score": 0.5}',
    b'{"is_anomalous": true, "score": 7.5}',
    b'{"IsAnomalous": "true", "Confidence": 0.5}',
    b'{"IsAnomalous": true, "Confidence": -0.1}',
    b'{"IsAnomalous": true}',
    b'{"IsAnomalous": true, "Confidence": 0.5, "AnomalyMask": "%%%"}',
    b'{"IsAnomalous": true, "Confidence": 0.5, "AnomalyMask": "aGVsbG8="}',
])
def test_map_rejects_anything_else(raw: bytes) -> None:
    with pytest.raises(UnexpectedModelResponse):
        map_response(raw)


# --- configuration ----------------------------------------------------------------------------

def test_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SAGEMAKER_ENDPOINT_NAME", ENDPOINT)
    monkeypatch.setenv("SAGEMAKER_ENDPOINT_CONFIG_NAME", CONFIG)
    b = SageMakerBackend.from_env(start_timeout_seconds=900)
    assert (b.endpoint_name, b.endpoint_config_name, b.start_timeout_seconds) == (ENDPOINT, CONFIG, 900)
    assert b.model_id == ENDPOINT


def test_from_env_names_the_missing_or_bad_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SAGEMAKER_ENDPOINT_NAME", raising=False)
    monkeypatch.setenv("SAGEMAKER_ENDPOINT_CONFIG_NAME", CONFIG)
    with pytest.raises(SettingsError, match="SAGEMAKER_ENDPOINT_NAME"):
        SageMakerBackend.from_env(start_timeout_seconds=900)
    monkeypatch.setenv("SAGEMAKER_ENDPOINT_NAME", "bad_name!")
    with pytest.raises(SettingsError, match="SAGEMAKER_ENDPOINT_NAME"):
        SageMakerBackend.from_env(start_timeout_seconds=900)
