"""The local InvokeEndpoint server answers like SageMaker Runtime, checked through boto3."""
from __future__ import annotations

import boto3
import pytest
from botocore.exceptions import ClientError

from batchsight_pipeline.backends.sagemaker import map_response
from batchsight_tools.localcloud.sagemaker_runtime import SageMakerRuntime
from batchsight_tools.synth import generate_training_set


@pytest.fixture
def runtime(fitted_model):
    statuses = {"up": "InService", "starting": "Creating"}
    server = SageMakerRuntime(fitted_model, statuses.get).start()
    yield server
    server.stop()


def _client(url: str):
    return boto3.client("sagemaker-runtime", endpoint_url=url, region_name="us-east-1",
                        aws_access_key_id="x", aws_secret_access_key="x")


def test_invoke_endpoint_returns_a_detect_anomaly_result(runtime) -> None:
    image = generate_training_set(1, size=128, seed=99)[0]
    response = _client(runtime.url).invoke_endpoint(EndpointName="up", Body=image, ContentType="image/jpeg",
                                                    Accept="application/json")
    result = map_response(response["Body"].read())
    assert isinstance(result["IsAnomalous"], bool) and 0 <= result["Confidence"] <= 1


@pytest.mark.parametrize("endpoint, code", [("missing", "ValidationError"), ("starting", "ValidationError")])
def test_endpoint_not_in_service_is_refused(runtime, endpoint: str, code: str) -> None:
    with pytest.raises(ClientError) as error:
        _client(runtime.url).invoke_endpoint(EndpointName=endpoint, Body=b"x", ContentType="image/jpeg")
    assert error.value.response["Error"]["Code"] == code


def test_undecodable_image_is_a_model_error(runtime) -> None:
    with pytest.raises(ClientError) as error:
        _client(runtime.url).invoke_endpoint(EndpointName="up", Body=b"\xff\xd8\xffnope", ContentType="image/jpeg")
    assert error.value.response["Error"]["Code"] == "ModelError"
