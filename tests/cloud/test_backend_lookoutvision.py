"""The lookoutvision backend against the archived service model, with botocore's Stubber.

Lookout for Vision has no moto mock and no client in current botocore; the client is built
from ../shared/aws-models, and the Stubber checks every request and response against the
service's real shapes (ClientToken pattern, ModelVersion pattern, blob types, ...).
"""
from __future__ import annotations

import io
import json
from collections.abc import Iterator
from datetime import datetime, UTC
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber

from batchsight_pipeline.backends.base import (
    FAILED,
    HOSTED,
    MASK_KEY,
    STARTING,
    STOPPED,
    TIMED_OUT,
    ModelRejectedImage,
    ModelState,
)
from batchsight_pipeline.backends.lookoutvision import (
    LookoutVisionBackend,
    ModelBusy,
    UnexpectedModelResponse,
    build_client,
    client_token,
)
from batchsight_pipeline.settings import SettingsError

MODELS = Path(__file__).resolve().parents[2].parent / "shared" / "aws-models"
pytestmark = pytest.mark.skipif(not (MODELS / "lookoutvision" / "2020-11-20").is_dir(),
                                reason=f"archived Lookout for Vision service model not found at {MODELS}")

PROJECT, VERSION = "circuit-boards", "3"
IDS = {"ProjectName": PROJECT, "ModelVersion": VERSION}
JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 64


def png(size: int = 8) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (size, size), (255, 0, 0)).save(out, format="PNG")
    return out.getvalue()


@pytest.fixture(autouse=True)
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_LOOKOUTVISION", "AWS_PROFILE", "AWS_DATA_PATH"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")


@pytest.fixture(scope="module")
def shared_client() -> Any:
    """One client for the module: building one loads botocore's data files (~0.3 s)."""
    with pytest.MonkeyPatch.context() as env:
        env.delenv("AWS_ENDPOINT_URL", raising=False)
        env.setenv("AWS_DEFAULT_REGION", "us-east-1")
        return build_client(MODELS)


@pytest.fixture
def stub(shared_client: Any) -> Iterator[Stubber]:
    with Stubber(shared_client) as stubber:
        yield stubber
        stubber.assert_no_pending_responses()


def backend(stubber: Stubber, **kwargs: Any) -> LookoutVisionBackend:
    return LookoutVisionBackend(project=PROJECT, model_version=VERSION, client=stubber.client,
                                start_timeout_seconds=kwargs.pop("start_timeout_seconds", 1800), **kwargs)


def description(status: str, message: str = "") -> dict[str, Any]:
    model: dict[str, Any] = {"ModelVersion": VERSION, "Status": status,
                             "ModelArn": f"arn:aws:lookoutvision:us-east-1:123456789012:model/{PROJECT}/{VERSION}",
                             "CreationTimestamp": datetime(2024, 1, 2, tzinfo=UTC)}
    if message:
        model["StatusMessage"] = message
    return {"ModelDescription": model}


# --- the client ---------------------------------------------------------------------------

def test_client_is_built_from_the_archived_model() -> None:
    client = build_client(MODELS)
    assert client.meta.service_model.service_name == "lookoutvision"
    assert client.meta.service_model.api_version == "2020-11-20"
    assert client.meta.region_name == "us-east-1"


def test_client_honours_aws_data_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_DATA_PATH", str(MODELS))
    assert build_client(None).meta.service_model.service_name == "lookoutvision"


def test_client_without_a_model_is_a_settings_error(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="LOOKOUTVISION_MODEL_PATH"):
        build_client(tmp_path)
    with pytest.raises(SettingsError, match="no Lookout for Vision client"):
        build_client(None)


def test_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOOKOUTVISION_PROJECT", PROJECT)
    monkeypatch.setenv("LOOKOUTVISION_MODEL_VERSION", VERSION)
    monkeypatch.setenv("LOOKOUTVISION_MODEL_PATH", str(MODELS))
    monkeypatch.delenv("LOOKOUTVISION_INFERENCE_UNITS", raising=False)
    b = LookoutVisionBackend.from_env(start_timeout_seconds=1800)
    assert (b.project, b.model_version, b.inference_units, b.model_id) == (PROJECT, VERSION, 1, "circuit-boards:3")
    assert b.client.meta.service_model.service_name == "lookoutvision"
    monkeypatch.setenv("LOOKOUTVISION_INFERENCE_UNITS", "2")
    assert LookoutVisionBackend.from_env(start_timeout_seconds=1800).inference_units == 2


@pytest.mark.parametrize(("name", "value"), [
    ("LOOKOUTVISION_INFERENCE_UNITS", "0"), ("LOOKOUTVISION_INFERENCE_UNITS", "1.5"),
    ("LOOKOUTVISION_MODEL_VERSION", "v3"), ("LOOKOUTVISION_PROJECT", "-bad"),
    ("LOOKOUTVISION_PROJECT", ""),
])
def test_from_env_names_a_bad_variable(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv("LOOKOUTVISION_PROJECT", PROJECT)
    monkeypatch.setenv("LOOKOUTVISION_MODEL_VERSION", VERSION)
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError, match=name):
        LookoutVisionBackend.from_env(start_timeout_seconds=1800)


# --- start --------------------------------------------------------------------------------

def test_client_token_is_fresh_per_run_and_stable_within_a_run() -> None:
    first = client_token("arn:aws:states:us-east-1:1:execution:batch:run-1", project=PROJECT, version=VERSION)
    again = client_token("arn:aws:states:us-east-1:1:execution:batch:run-1", project=PROJECT, version=VERSION)
    second = client_token("arn:aws:states:us-east-1:1:execution:batch:run-2", project=PROJECT, version=VERSION)
    assert first == again != second
    assert 1 <= len(first) <= 64 and all(c.isalnum() or c == "-" for c in first)


def test_start_sends_a_per_run_client_token(stub: Stubber) -> None:
    tokens = [client_token(run, project=PROJECT, version=VERSION) for run in ("run-1", "run-1", "run-2")]
    for token in tokens:
        stub.add_response("start_model", {"Status": "STARTING_HOSTING"},
                          {**IDS, "MinInferenceUnits": 2, "ClientToken": token})
    b = backend(stub, inference_units=2)
    states = [b.start(run_token=run) for run in ("run-1", "run-1", "run-2")]
    assert [s.status for s in states] == [STARTING] * 3
    assert tokens[0] == tokens[1] != tokens[2]


def test_start_of_a_hosted_model_under_another_token_is_hosted(stub: Stubber) -> None:
    stub.add_client_error("start_model", "ConflictException", "model is already hosted", 409)
    stub.add_response("describe_model", description("HOSTED"), IDS)
    assert backend(stub).start(run_token="run-1").status == HOSTED


def test_start_while_stopping_asks_for_a_retry(stub: Stubber) -> None:
    stub.add_client_error("start_model", "ConflictException", "model is stopping", 409)
    stub.add_response("describe_model", description("STOPPING_HOSTING"), IDS)
    with pytest.raises(ModelBusy, match="stopping"):
        backend(stub).start(run_token="run-1")


def test_start_errors_other_than_conflict_propagate(stub: Stubber) -> None:
    stub.add_client_error("start_model", "ServiceQuotaExceededException", "too many inference units", 402)
    with pytest.raises(ClientError, match="too many inference units"):
        backend(stub).start(run_token="run-1")


# --- status -------------------------------------------------------------------------------

@pytest.mark.parametrize(("raw", "expected"), [
    ("STARTING_HOSTING", STARTING), ("SYSTEM_UPDATING", STARTING), ("HOSTED", HOSTED),
    ("HOSTING_FAILED", FAILED), ("TRAINED", STOPPED), ("STOPPING_HOSTING", STOPPED),
    ("TRAINING", FAILED), ("TRAINING_FAILED", FAILED), ("DELETING", FAILED),
])
def test_describe_model_status_mapping(stub: Stubber, raw: str, expected: str) -> None:
    stub.add_response("describe_model", description(raw, "details"), IDS)
    status, reason = backend(stub)._describe()
    assert status == expected
    if raw in ("TRAINING", "TRAINING_FAILED", "DELETING"):
        assert raw in reason and "cannot be hosted" in reason


def test_hosting_failed_carries_the_status_message(stub: Stubber) -> None:
    stub.add_response("describe_model", description("HOSTING_FAILED", "Insufficient capacity"), IDS)
    assert backend(stub)._describe() == (FAILED, "Insufficient capacity")


def test_stopping_is_not_hosted_but_notes_billing(stub: Stubber) -> None:
    stub.add_response("describe_model", description("STOPPING_HOSTING"), IDS)
    status, reason = backend(stub)._describe()
    assert status == STOPPED and "billed" in reason


def test_missing_model_is_failed_with_a_reason(stub: Stubber) -> None:
    stub.add_client_error("describe_model", "ResourceNotFoundException", "model not found", 404)
    status, reason = backend(stub)._describe()
    assert status == FAILED and "does not exist" in reason


def test_starting_too_long_is_timed_out(stub: Stubber) -> None:
    stub.add_response("describe_model", description("STARTING_HOSTING"), IDS)
    previous = ModelState(backend="lookoutvision", model_id="circuit-boards:3", status=STARTING,
                          started_at="2020-01-01T00:00:00+00:00", run_token="run-1")
    assert backend(stub).status(previous).status == TIMED_OUT


# --- stop ---------------------------------------------------------------------------------

def test_stop(stub: Stubber) -> None:
    stub.add_response("stop_model", {"Status": "STOPPING_HOSTING"}, IDS)
    assert backend(stub).stop().status == STOPPED


@pytest.mark.parametrize("raw", ["TRAINED", "STOPPING_HOSTING", "HOSTING_FAILED"])
def test_stop_when_already_stopped_is_fine(stub: Stubber, raw: str) -> None:
    stub.add_client_error("stop_model", "ConflictException", "model is not hosted", 409)
    stub.add_response("describe_model", description(raw), IDS)
    assert backend(stub).stop().status == STOPPED


def test_stop_twice_is_fine(stub: Stubber) -> None:
    stub.add_response("stop_model", {"Status": "STOPPING_HOSTING"})
    stub.add_client_error("stop_model", "ConflictException", "model is stopping", 409)
    stub.add_response("describe_model", description("STOPPING_HOSTING"), IDS)
    b = backend(stub)
    assert b.stop().status == STOPPED
    assert b.stop().status == STOPPED


def test_stop_of_a_starting_model_is_retried_not_forgotten(stub: Stubber) -> None:
    """A conflict while STARTING_HOSTING would leave a billed model running: raise for a retry."""
    stub.add_client_error("stop_model", "ConflictException", "model is starting", 409)
    stub.add_response("describe_model", description("STARTING_HOSTING"), IDS)
    with pytest.raises(ModelBusy, match="STARTING_HOSTING"):
        backend(stub).stop()


def test_stop_passes_throttling_through(stub: Stubber) -> None:
    stub.add_client_error("stop_model", "ThrottlingException", "slow down", 429)
    with pytest.raises(ClientError, match="slow down"):
        backend(stub).stop()


# --- detect -------------------------------------------------------------------------------

def test_detect_classification(stub: Stubber) -> None:
    stub.add_response("detect_anomalies", {"DetectAnomalyResult": {
        "Source": {"Type": "direct"}, "IsAnomalous": False, "Confidence": 0.93}},
        {**IDS, "Body": JPEG, "ContentType": "image/jpeg"})
    result = backend(stub).detect(JPEG, content_type="image/jpeg")
    assert result == {"Source": {"Type": "direct"}, "IsAnomalous": False, "Confidence": 0.93}


def test_detect_segmentation_separates_the_mask(stub: Stubber) -> None:
    mask = png()
    anomalies = [{"Name": "background", "PixelAnomaly": {"TotalPercentageArea": 0.87, "Color": "#FFFFFF"}},
                 {"Name": "scratch", "PixelAnomaly": {"TotalPercentageArea": 0.13, "Color": "#23A436"}}]
    stub.add_response("detect_anomalies", {"DetectAnomalyResult": {
        "Source": {"Type": "direct"}, "IsAnomalous": True, "Confidence": 0.99,
        "Anomalies": anomalies, "AnomalyMask": mask}},
        {**IDS, "Body": mask, "ContentType": "image/png"})
    result = backend(stub).detect(mask, content_type="image/png")
    assert result.pop(MASK_KEY) == mask
    assert "AnomalyMask" not in result
    assert json.loads(json.dumps(result)) == {"Source": {"Type": "direct"}, "IsAnomalous": True,
                                              "Confidence": 0.99, "Anomalies": anomalies}


def test_validation_exception_on_the_image_is_poison(stub: Stubber) -> None:
    stub.add_client_error("detect_anomalies", "ValidationException",
                          "Image dimensions do not match the training images", 400)
    with pytest.raises(ModelRejectedImage, match="dimensions"):
        backend(stub).detect(JPEG, content_type="image/jpeg")


def test_validation_exception_about_hosting_is_not_poison(stub: Stubber) -> None:
    stub.add_client_error("detect_anomalies", "ValidationException", "The model is not hosted", 400)
    with pytest.raises(ClientError) as raised:
        backend(stub).detect(JPEG, content_type="image/jpeg")
    assert not isinstance(raised.value, ModelRejectedImage)


@pytest.mark.parametrize(("code", "status"), [("ThrottlingException", 429), ("InternalServerException", 500),
                                              ("ConflictException", 409), ("ResourceNotFoundException", 404)])
def test_other_detect_errors_are_redelivered(stub: Stubber, code: str, status: int) -> None:
    stub.add_client_error("detect_anomalies", code, "try again", status)
    with pytest.raises(ClientError) as raised:
        backend(stub).detect(JPEG, content_type="image/jpeg")
    assert not isinstance(raised.value, ModelRejectedImage)


def test_unsupported_content_type_is_poison_without_a_call(stub: Stubber) -> None:
    with pytest.raises(ModelRejectedImage, match="content type"):
        backend(stub).detect(JPEG, content_type="image/bmp")


def test_a_mask_that_is_not_png_is_an_error(stub: Stubber) -> None:
    stub.add_response("detect_anomalies", {"DetectAnomalyResult": {
        "IsAnomalous": True, "Confidence": 0.5, "AnomalyMask": b"GIF89a"}})
    with pytest.raises(UnexpectedModelResponse, match="PNG"):
        backend(stub).detect(JPEG, content_type="image/jpeg")
