"""Stand-ins for the remote model services, one harness per backend, for the backend contract.

The remote services are stood in for by stateful fakes on real botocore clients: moto for
the SageMaker control plane, and for Lookout for Vision and sagemaker-runtime a
``ShapeCheckedFake`` that answers from Python like botocore's Stubber does (the client
validates every request against the real API shape, and the fake validates every answer
against the output shape), but keeps state, so the contract tests behaviour, not call order.
"""
from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
from botocore.awsrequest import AWSResponse
from botocore.exceptions import ParamValidationError
from botocore.validate import ParamValidator

from batchsight_pipeline.backends.base import ModelBackend

MODELS = Path(__file__).resolve().parents[2].parent / "shared" / "aws-models"
HAS_LOOKOUT_MODEL = (MODELS / "lookoutvision" / "2020-11-20").is_dir()
ACCOUNT, REGION = "123456789012", "us-east-1"
TIMEOUT = 60  # every harness's start timeout, in seconds


# --- a stateful, shape-checked fake for botocore clients --------------------------------------

class FakeError(Exception):
    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code, self.message, self.status = code, message, status


class ShapeCheckedFake:
    """Answers a real client's calls with Python handlers, validated like Stubber's answers."""

    def __init__(self, client: Any, handlers: dict[str, Callable[[dict[str, Any]], dict[str, Any]]]) -> None:
        self.handlers = handlers
        self.calls: list[str] = []
        service = client.meta.service_model.service_id.hyphenize()
        client.meta.events.register_first(f"before-parameter-build.{service}", self._remember)
        client.meta.events.register(f"before-call.{service}", self._answer)

    @staticmethod
    def _remember(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        context["fake_params"] = dict(params)

    def _answer(self, model: Any, context: dict[str, Any], **_: Any) -> tuple[AWSResponse, dict[str, Any]]:
        self.calls.append(model.name)
        try:
            parsed, status = self.handlers[model.name](context["fake_params"]), 200
        except FakeError as error:
            parsed, status = {"Error": {"Code": error.code, "Message": error.message}}, error.status
        else:
            report = ParamValidator().validate(parsed, model.output_shape)
            if report.has_errors():
                raise ParamValidationError(report=report.generate_report())
        parsed["ResponseMetadata"] = {"HTTPStatusCode": status}
        return AWSResponse(None, status, {}, None), parsed


_SESSION: list[boto3.session.Session] = []


def aws_client(service: str) -> Any:
    """Clients from one session: it caches the loaded API models, so each client is cheap."""
    if not _SESSION:
        _SESSION.append(boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing",
                                              region_name=REGION))
    return _SESSION[0].client(service)


def png(size: int = 8) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("L", (size, size), 255).save(out, format="PNG")
    return out.getvalue()


# --- one harness per backend -------------------------------------------------------------------

class Harness:
    """Builds backends whose hosting either completes or stays STARTING, and a sample image."""

    name = ""

    def backend(self) -> ModelBackend:
        raise NotImplementedError

    def stalled_backend(self) -> ModelBackend:
        raise NotImplementedError


class LocalHarness(Harness):
    name = "local"

    def __init__(self, model_path: Path, tmp: Path) -> None:
        self.model_path, self.tmp = model_path, tmp

    def backend(self) -> ModelBackend:
        from batchsight_tools.localcloud.local_backend import LocalBackend

        return LocalBackend(model_path=self.model_path, state_dir=self.tmp / "hosting", startup_seconds=0.05,
                            start_timeout_seconds=TIMEOUT)

    def stalled_backend(self) -> ModelBackend:
        from batchsight_tools.localcloud.local_backend import LocalBackend

        return LocalBackend(model_path=self.model_path, state_dir=self.tmp / "stalled", startup_seconds=3600,
                            start_timeout_seconds=TIMEOUT)


class SageMakerHarness(Harness):
    """moto runs the endpoint lifecycle; InvokeEndpoint is a fake that needs a live endpoint."""

    name = "sagemaker"
    endpoint, config = "batchsight-model", "batchsight-model-config"

    def __init__(self) -> None:
        self.control = aws_client("sagemaker")
        self.control.create_model(ModelName="m", ExecutionRoleArn=f"arn:aws:iam::{ACCOUNT}:role/sm",
                                  PrimaryContainer={"Image": f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/m:1"})
        self.control.create_endpoint_config(EndpointConfigName=self.config, ProductionVariants=[{
            "VariantName": "AllTraffic", "ModelName": "m", "InitialInstanceCount": 1,
            "InstanceType": "ml.m5.large"}])

    def _invoke(self, params: dict[str, Any]) -> dict[str, Any]:
        endpoints = self.control.list_endpoints(StatusEquals="InService")["Endpoints"]
        if params["EndpointName"] not in [e["EndpointName"] for e in endpoints]:
            raise FakeError("ValidationError", f"Endpoint {params['EndpointName']} of account {ACCOUNT} not found.")
        body = params["Body"]
        anomalous = len(body) % 2 == 1  # any deterministic verdict will do
        return {"Body": json.dumps({"pred_label": int(anomalous), "pred_score": 0.8 if anomalous else 0.1}).encode(),
                "ContentType": "application/json"}

    backend_class: Any = None  # SageMakerBackend unless a subclass says

    def _make(self, *, stalled: bool) -> ModelBackend:
        from batchsight_pipeline.backends.sagemaker import SageMakerBackend

        control = aws_client("sagemaker")
        if stalled:  # moto makes endpoints InService at once; real ones spend minutes Creating
            def creating(parsed: dict[str, Any], **_: Any) -> None:
                if "EndpointStatus" in parsed:
                    parsed["EndpointStatus"] = "Creating"
            control.meta.events.register("after-call.sagemaker.DescribeEndpoint", creating)
        runtime = aws_client("sagemaker-runtime")
        ShapeCheckedFake(runtime, {"InvokeEndpoint": self._invoke})
        kind = self.backend_class or SageMakerBackend
        return kind(endpoint_name=self.endpoint, endpoint_config_name=self.config,
                    sagemaker=control, runtime=runtime, start_timeout_seconds=TIMEOUT)

    def backend(self) -> ModelBackend:
        return self._make(stalled=False)

    def stalled_backend(self) -> ModelBackend:
        return self._make(stalled=True)


class FakeLookoutVision:
    """One model version with Lookout for Vision's hosting states."""

    def __init__(self, *, polls_to_host: int | None) -> None:
        self.status, self.polls_to_host, self.polls = "TRAINED", polls_to_host, 0
        self.tokens: list[str] = []

    def handlers(self) -> dict[str, Callable[[dict[str, Any]], dict[str, Any]]]:
        return {"StartModel": self.start, "DescribeModel": self.describe, "StopModel": self.stop,
                "DetectAnomalies": self.detect}

    def start(self, params: dict[str, Any]) -> dict[str, Any]:
        if self.status not in ("TRAINED", "HOSTING_FAILED"):
            raise FakeError("ConflictException", f"model is {self.status}", 409)
        self.tokens.append(params["ClientToken"])
        self.status, self.polls = "STARTING_HOSTING", 0
        return {"Status": self.status}

    def describe(self, params: dict[str, Any]) -> dict[str, Any]:
        if self.status == "STARTING_HOSTING" and self.polls_to_host is not None:
            self.polls += 1
            if self.polls >= self.polls_to_host:
                self.status = "HOSTED"
        elif self.status == "STOPPING_HOSTING":
            self.status = "TRAINED"
        return {"ModelDescription": {"ModelVersion": params["ModelVersion"], "Status": self.status,
                                     "StatusMessage": f"model is {self.status.lower()}"}}

    def stop(self, params: dict[str, Any]) -> dict[str, Any]:
        if self.status != "HOSTED":
            raise FakeError("ConflictException", f"model is {self.status}", 409)
        self.status = "STOPPING_HOSTING"
        return {"Status": self.status}

    def detect(self, params: dict[str, Any]) -> dict[str, Any]:
        if self.status != "HOSTED":
            raise FakeError("ConflictException", "model is not hosted", 409)
        if params["ContentType"] not in ("image/jpeg", "image/png"):
            raise FakeError("ValidationException", "unsupported content type")
        return {"DetectAnomalyResult": {
            "Source": {"Type": "direct"}, "IsAnomalous": True, "Confidence": 0.91,
            "Anomalies": [{"Name": "background", "PixelAnomaly": {"TotalPercentageArea": 0.95, "Color": "#FFFFFF"}},
                          {"Name": "scratch", "PixelAnomaly": {"TotalPercentageArea": 0.05, "Color": "#FF0000"}}],
            "AnomalyMask": png()}}


class LookoutVisionHarness(Harness):
    name = "lookoutvision"

    def __init__(self, client_factory: Callable[[], Any]) -> None:
        self.client_factory = client_factory
        self.service: FakeLookoutVision | None = None

    def _make(self, polls_to_host: int | None) -> ModelBackend:
        from batchsight_pipeline.backends.lookoutvision import LookoutVisionBackend

        self.service = FakeLookoutVision(polls_to_host=polls_to_host)
        client = self.client_factory()
        ShapeCheckedFake(client, self.service.handlers())
        return LookoutVisionBackend(project="circuit-boards", model_version="3", client=client,
                                    start_timeout_seconds=TIMEOUT)

    def backend(self) -> ModelBackend:
        return self._make(polls_to_host=2)

    def stalled_backend(self) -> ModelBackend:
        return self._make(polls_to_host=None)


class ServerlessHarness(Harness):
    """The ``lambda`` backend on a model package in S3 (moto server over HTTP), as publish writes it.

    It has no start phase (nothing to host): the two contract tests about a start that stays
    STARTING do not apply and skip.
    """

    name = "lambda"

    def __init__(self, model_path: Path, s3: Any, bucket: str) -> None:
        from tests.cloud import model_packages

        s3.create_bucket(Bucket=bucket)
        model_packages.write(s3, bucket, "inspection", "1", model_path)
        self.bucket = bucket

    def backend(self) -> ModelBackend:
        from batchsight_pipeline.backends.serverless import ServerlessDetectorBackend

        return ServerlessDetectorBackend(bucket=self.bucket, model_name="inspection", start_timeout_seconds=TIMEOUT)

    def stalled_backend(self) -> ModelBackend:
        import pytest

        pytest.skip("the lambda backend has no start phase: a start is HOSTED at once")


class SageMakerServerlessHarness(SageMakerHarness):
    """An endpoint config with a ServerlessConfig; the endpoint stays when the batch ends."""

    name = "sagemaker-serverless"

    def __init__(self) -> None:
        from batchsight_pipeline.backends.sagemaker_serverless import SageMakerServerlessBackend

        self.backend_class = SageMakerServerlessBackend
        self.control = aws_client("sagemaker")
        self.control.create_model(ModelName="m", ExecutionRoleArn=f"arn:aws:iam::{ACCOUNT}:role/sm",
                                  PrimaryContainer={"Image": f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/m:1"})
        self.control.create_endpoint_config(EndpointConfigName=self.config, ProductionVariants=[{
            "VariantName": "AllTraffic", "ModelName": "m",
            "ServerlessConfig": {"MemorySizeInMB": 3072, "MaxConcurrency": 10}}])
