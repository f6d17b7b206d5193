"""How the local cloud hosts the model, per backend: the local detector, or SageMaker.

``local``: the detector "hosted" by the local backend (warm-up, ledger of hosted time).
``sagemaker``: moto's SageMaker control plane (a deployed Model and EndpointConfig, the
pipeline creating and deleting the endpoint) plus SageMakerRuntime for InvokeEndpoint.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from batchsight_tools.localcloud.local_backend import LocalBackend
from batchsight_tools.localcloud.sagemaker_runtime import SageMakerRuntime
from batchsight_tools.localcloud.stack import ACCOUNT, LocalCloud

ENDPOINT, ENDPOINT_CONFIG, MODEL = "batchsight-demo", "batchsight-demo-config", "batchsight-demo-model"


class LocalHosting:
    backend = "local"

    def __init__(self, model_path: Path, state_dir: Path, startup_seconds: float) -> None:
        self.model_path, self.state_dir, self.startup_seconds = model_path, state_dir, startup_seconds

    def stack_settings(self) -> tuple[dict[str, str], dict[str, str]]:
        return {"ModelBackend": "local"}, {
            "LOCAL_MODEL_PATH": str(self.model_path), "LOCAL_MODEL_STATE_DIR": str(self.state_dir),
            "LOCAL_MODEL_STARTUP_SECONDS": str(self.startup_seconds)}

    def deploy(self, cloud: LocalCloud) -> None:
        """Nothing to deploy: the model file is the model."""

    def _backend(self) -> LocalBackend:
        return LocalBackend(model_path=self.model_path, state_dir=self.state_dir,
                            startup_seconds=0, start_timeout_seconds=1)

    def still_hosted(self, cloud: LocalCloud) -> bool:
        return self._backend().hosting_status() != "STOPPED"

    def hosted_seconds(self) -> float | None:
        return self._backend().hosted_seconds()

    def close(self) -> None:
        """Nothing runs outside the pipeline's Lambdas."""


class SageMakerHosting:
    backend = "sagemaker"

    def __init__(self, model_path: Path) -> None:
        self._cloud: LocalCloud | None = None
        self.runtime = SageMakerRuntime(model_path, self._endpoint_status).start()

    def stack_settings(self) -> tuple[dict[str, str], dict[str, str]]:
        return ({"ModelBackend": "sagemaker", "SageMakerEndpointName": ENDPOINT,
                 "SageMakerEndpointConfigName": ENDPOINT_CONFIG},
                {"AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME": self.runtime.url})

    def deploy(self, cloud: LocalCloud) -> None:
        """What a plant deploys once: the model and its endpoint configuration (no endpoint)."""
        self._cloud = cloud
        sagemaker = cloud.client("sagemaker")
        sagemaker.create_model(ModelName=MODEL, ExecutionRoleArn=f"arn:aws:iam::{ACCOUNT}:role/batchsight-local",
                               PrimaryContainer={"Image": f"{ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com/batchsight:1"})
        sagemaker.create_endpoint_config(EndpointConfigName=ENDPOINT_CONFIG, ProductionVariants=[{
            "VariantName": "all", "ModelName": MODEL, "InitialInstanceCount": 1,
            "InstanceType": "ml.m5.large"}])

    def _endpoint_status(self, name: str) -> str | None:
        assert self._cloud is not None
        try:
            return str(self._cloud.client("sagemaker").describe_endpoint(EndpointName=name)["EndpointStatus"])
        except ClientError:
            return None

    def still_hosted(self, cloud: LocalCloud) -> bool:
        return bool(cloud.client("sagemaker").list_endpoints()["Endpoints"])

    def hosted_seconds(self) -> float | None:
        return None  # moto keeps no endpoint timeline; the endpoint's absence is what is checked

    def close(self) -> None:
        self.runtime.stop()


def hosting_for(backend: str, model_path: Path, work: Path, startup_seconds: float) -> Any:
    if backend == "sagemaker":
        return SageMakerHosting(model_path)
    return LocalHosting(model_path, work / "model-hosting", startup_seconds)
