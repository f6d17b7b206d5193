"""How the local cloud hosts the model, per backend: in the model bucket, the local detector, or SageMaker.

``lambda`` (the template's default): nothing is hosted. The fitted model is published and
deployed as a version in the local cloud's ModelBucket with the real `batchsight dataset build`,
`model publish` and `model deploy` (model_commands.py), and the drain function runs the
detector from the version the index names current, resolved at each execution's start.
``local``: the detector "hosted" by the local backend (warm-up, ledger of hosted time).
``sagemaker``: moto's SageMaker control plane (a deployed Model and EndpointConfig, the
pipeline creating and deleting the endpoint) plus SageMakerRuntime for InvokeEndpoint.
``sagemaker-serverless``: the same with a ServerlessConfig, the endpoint created at the first
batch and left in place (it bills per inference, nothing while idle).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from batchsight_tools.localcloud import model_commands
from batchsight_tools.localcloud.local_backend import LocalBackend
from batchsight_tools.localcloud.sagemaker_runtime import SageMakerRuntime
from batchsight_tools.localcloud.stack import ACCOUNT, LocalCloud

ENDPOINT, ENDPOINT_CONFIG, MODEL = "batchsight-demo", "batchsight-demo-config", "batchsight-demo-model"
MODEL_NAME = "inspection"   # cloud/template.yaml parameter ModelName's default
DATASET = "demo"
BACKENDS = ("lambda", "local", "sagemaker", "sagemaker-serverless")


class CommandFailed(RuntimeError):
    """A `batchsight model` or `dataset` command the demo ran failed; the message is its own line."""


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

    def hosting_note(self, elapsed: float) -> str:
        return f"{self.hosted_seconds() or 0.0:.1f} s of a {elapsed:.0f} s run"

    def close(self) -> None:
        """Nothing runs outside the pipeline's Lambdas."""


class SageMakerHosting:
    backend = "sagemaker"
    variant: dict[str, Any] = {"InitialInstanceCount": 1, "InstanceType": "ml.m5.large"}

    def __init__(self, model_path: Path) -> None:
        self._cloud: LocalCloud | None = None
        self.runtime = SageMakerRuntime(model_path, self._endpoint_status).start()

    def stack_settings(self) -> tuple[dict[str, str], dict[str, str]]:
        return ({"ModelBackend": self.backend, "SageMakerEndpointName": ENDPOINT,
                 "SageMakerEndpointConfigName": ENDPOINT_CONFIG},
                {"AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME": self.runtime.url})

    def deploy(self, cloud: LocalCloud) -> None:
        """What a plant deploys once: the model and its endpoint configuration (no endpoint)."""
        self._cloud = cloud
        sagemaker = cloud.client("sagemaker")
        sagemaker.create_model(ModelName=MODEL, ExecutionRoleArn=f"arn:aws:iam::{ACCOUNT}:role/batchsight-local",
                               PrimaryContainer={"Image": f"{ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com/batchsight:1"})
        sagemaker.create_endpoint_config(EndpointConfigName=ENDPOINT_CONFIG, ProductionVariants=[{
            "VariantName": "all", "ModelName": MODEL, **self.variant}])

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

    def hosting_note(self, elapsed: float) -> str:
        return "endpoint created for each batch and deleted after it"

    def close(self) -> None:
        self.runtime.stop()


class ServerlessSageMakerHosting(SageMakerHosting):
    """The endpoint stays: the backend's stop releases nothing, since an idle serverless endpoint
    bills nothing and a new one would make the next batch wait for its creation."""

    backend = "sagemaker-serverless"
    variant = {"ServerlessConfig": {"MemorySizeInMB": 2048, "MaxConcurrency": 5}}

    def still_hosted(self, cloud: LocalCloud) -> bool:
        return False  # by design: see the class's docstring; the cost model counts per inference

    def hosting_note(self, elapsed: float) -> str:
        return ("serverless endpoint created at the first batch and kept: billed per inference, "
                f"nothing while idle ({self.runtime.invocations} invocations)")


@dataclass(frozen=True)
class DatasetInfo:
    """A dataset as `batchsight dataset build` left it in the model bucket."""

    uri: str
    normal: int
    anomaly: int
    from_feedback: int
    training: tuple[int, int]   # normal and anomaly images outside the held-out split (fitted on)

    @property
    def images(self) -> int:
        return self.normal + self.anomaly


class LambdaHosting:
    """Versions in the model bucket, made with the real commands; nothing hosted."""

    backend = "lambda"

    def __init__(self, model_path: Path, training: Path, cache_dir: Path, *, model_name: str = MODEL_NAME,
                 dataset: str = DATASET) -> None:
        self.model_path, self.training, self.cache_dir = model_path, training, cache_dir
        self.model_name, self.dataset_name = model_name, dataset
        self._cloud: LocalCloud | None = None
        self._previous_cache: Path | None = None
        self.dataset: DatasetInfo | None = None
        self.deployed: list[str] = []   # versions made current, in order

    def stack_settings(self) -> tuple[dict[str, str], dict[str, str]]:
        return {"ModelBackend": "lambda", "ModelName": self.model_name}, {}

    @property
    def bucket(self) -> str:
        assert self._cloud is not None and self._cloud.outputs is not None, "deploy(cloud) first"
        return self._cloud.outputs.extra["ModelBucketName"]

    def _aws(self) -> list[str]:
        assert self._cloud is not None
        return ["--endpoint-url", self._cloud.endpoint_url, "--region", "us-east-1"]

    def _registry(self) -> list[str]:
        return ["--bucket", self.bucket, "--name", self.model_name, *self._aws()]

    def deploy(self, cloud: LocalCloud) -> None:
        """Version 1: the dataset of the training folder, the fitted model published on it, made current."""
        self._cloud = cloud
        self._cold_function()
        self.dataset = self.build_dataset()
        version, outcome = self.publish(self.model_path)
        if version is None:
            raise CommandFailed(outcome.error)
        self.make_current(version)

    def build_dataset(self, *, feedback_bucket: str = "", site: str = "", line: str = "") -> DatasetInfo:
        """`batchsight dataset build` of the training folder (and the operators' answers)."""
        feedback = ["--feedback", feedback_bucket, "--site", site, "--line", line] if feedback_bucket else []
        outcome = model_commands.run("dataset", "build", "--bucket", self.bucket, "--name", self.dataset_name,
                                     "--folder", str(self.training), *feedback, *self._aws())
        if not outcome.ok:
            raise CommandFailed(outcome.error)
        return self._read_dataset()

    @property
    def dataset_uri(self) -> str:
        return f"s3://{self.bucket}/datasets/{self.dataset_name}/manifest.jsonl"

    def _read_dataset(self) -> DatasetInfo:
        from batchsight_tools.dataset.manifest import loads
        from batchsight_tools.dataset.split import held_out

        assert self._cloud is not None
        key = self.dataset_uri.split("/", 3)[3]
        data = self._cloud.client("s3").get_object(Bucket=self.bucket, Key=key)["Body"].read()
        labels = loads(data, self.dataset_uri)
        anomalous = sum(label.anomalous for label in labels)
        fitted = [label for label in labels if not held_out(label.image_id)]
        return DatasetInfo(self.dataset_uri, normal=len(labels) - anomalous, anomaly=anomalous,
                           from_feedback=sum(label.source == "feedback" for label in labels),
                           training=(sum(not label.anomalous for label in fitted),
                                     sum(label.anomalous for label in fitted)))

    def publish(self, model_file: Path) -> tuple[str | None, model_commands.Outcome]:
        """`batchsight model publish` on the dataset: the new version, or None when the gate refused it."""
        outcome = model_commands.run("model", "publish", *self._registry(), "--model", str(model_file),
                                     "--dataset", self.dataset_uri)
        if not outcome.ok:
            return None, outcome
        return self.versions()[-1], outcome

    def make_current(self, version: str) -> None:
        """`batchsight model deploy --version N`: the pipeline's next start uses it."""
        outcome = model_commands.run("model", "deploy", *self._registry(), "--version", version)
        if not outcome.ok:
            raise CommandFailed(outcome.error)
        self.deployed.append(version)

    def versions(self) -> list[str]:
        from batchsight_tools.models.registry import Registry

        assert self._cloud is not None
        index, _ = Registry(self._cloud.client("s3"), self.bucket, self.model_name).read_index()
        return sorted((index or {}).get("versions", {}), key=int)

    def _cold_function(self) -> None:
        """The drain function's /tmp, where it keeps verified model files, is a folder of the work
        folder (removed with it), and starts cold: versions are per bucket, and every demo's
        bucket has the same name."""
        from batchsight_pipeline import model_store

        self._previous_cache = model_store.CACHE_DIR
        model_store.CACHE_DIR = self.cache_dir
        model_store._verified.clear()

    def still_hosted(self, cloud: LocalCloud) -> bool:
        return False  # nothing is ever hosted: the drain function runs the detector

    def hosted_seconds(self) -> float | None:
        return None

    def hosting_note(self, elapsed: float) -> str:
        return "none: nothing is hosted (the drain function runs the detector from the model bucket)"

    def close(self) -> None:
        if self._previous_cache is not None:
            from batchsight_pipeline import model_store

            model_store.CACHE_DIR = self._previous_cache
            model_store._verified.clear()
            self._previous_cache = None


def hosting_for(backend: str, model_path: Path, work: Path, startup_seconds: float, *,
                training: Path | None = None) -> Any:
    if backend == "lambda":
        if training is None:
            raise ValueError("the lambda backend publishes the model on its training folder: give training")
        return LambdaHosting(model_path, training, work / "lambda-tmp")
    if backend == "sagemaker":
        return SageMakerHosting(model_path)
    if backend == "sagemaker-serverless":
        return ServerlessSageMakerHosting(model_path)
    return LocalHosting(model_path, work / "model-hosting", startup_seconds)
