"""A version as a SageMaker real-time model: model.tar.gz, Model and EndpointConfig.

SageMaker unpacks ``ModelDataUrl`` (a tar.gz) into ``/opt/ml/model`` and starts the container
as ``docker run IMAGE serve``; the container of cloud/sagemaker/ runs `batchsight serve` (the
detector's /ping and /invocations) on ``/opt/ml/model/model.npz`` at port 8080. The pipeline's
``sagemaker`` backend then creates and deletes the endpoint around each batch from the
EndpointConfig made here (the stack parameter SageMakerEndpointConfigName).

Why the archive is built byte-for-byte repeatably (fixed times, owner and order): running the
command again for the same version finds the same object in S3 and leaves it, so the tarball
key is as immutable as the version. SageMaker names allow only letters, digits and hyphens, so
``inspection_v2.1`` version 3 becomes ``inspection-v2-1-v3``.
"""
from __future__ import annotations

import gzip
import io
import re
import tarfile
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from batchsight_tools.dataset.manifest import sha256
from batchsight_tools.dataset.objects import is_missing
from batchsight_tools.models.arguments import Failure, error_code
from batchsight_tools.models.package import MODEL_KEY

MODEL_IN_CONTAINER = "/opt/ml/model/" + MODEL_KEY


def tarball(model_file: bytes) -> bytes:
    """model.tar.gz holding model.npz at its root, the same bytes every time."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as archive:
        info = tarfile.TarInfo(MODEL_KEY)
        info.size, info.mode, info.mtime, info.uid, info.gid = len(model_file), 0o644, 0, 0, 0
        archive.addfile(info, io.BytesIO(model_file))
    return gzip.compress(raw.getvalue(), mtime=0)


def tarball_key(name: str, version: str) -> str:
    """Beside models/, not inside a version's immutable package folder."""
    return f"sagemaker/{name}/{version}/model.tar.gz"


def resource_name(name: str, version: str) -> str:
    """A SageMaker Model and EndpointConfig name for the version: ^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$."""
    return re.sub(r"[^A-Za-z0-9]+", "-", name).strip("-")[:52] + f"-v{version}"


@dataclass(frozen=True)
class Hosting:
    """How the endpoint runs the model: instances, or SageMaker serverless inference."""

    instance_type: str = "ml.m5.large"
    instance_count: int = 1
    serverless_memory_mb: int | None = None   # set: serverless (1024 to 6144 MB), no instances
    serverless_concurrency: int = 5

    def variant(self, model_name: str) -> dict[str, Any]:
        variant: dict[str, Any] = {"VariantName": "AllTraffic", "ModelName": model_name}
        if self.serverless_memory_mb:
            variant["ServerlessConfig"] = {"MemorySizeInMB": self.serverless_memory_mb,
                                           "MaxConcurrency": self.serverless_concurrency}
        else:
            variant.update(InstanceType=self.instance_type, InitialInstanceCount=self.instance_count)
        return variant


def upload_tarball(s3: Any, bucket: str, key: str, data: bytes) -> bool:
    """Put the archive unless the same bytes are there; Failure if other bytes are. True if uploaded."""
    from botocore.exceptions import ClientError

    try:
        there = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    except ClientError as exc:
        if not is_missing(exc):
            raise
    else:
        if sha256(there) != sha256(data):
            raise Failure(f"s3://{bucket}/{key} holds another archive than this version's model; remove it or "
                          "check the version")
        return False
    s3.put_object(Bucket=bucket, Key=key, Body=data, IfNoneMatch="*", ContentType="application/gzip")
    return True


def create(sagemaker: Any, *, name: str, image: str, model_data_url: str, role_arn: str, hosting: Hosting) -> None:
    """The Model and the EndpointConfig named ``name``; kept as they are if they exist alike."""
    container = {"Image": image, "ModelDataUrl": model_data_url, "Environment": {"LOG_LEVEL": "INFO"}}
    model = _describe(lambda: sagemaker.describe_model(ModelName=name))
    if model is None:
        sagemaker.create_model(ModelName=name, PrimaryContainer=container, ExecutionRoleArn=role_arn)
    elif (model["PrimaryContainer"].get("Image"), model["PrimaryContainer"].get("ModelDataUrl")) != (
            image, model_data_url):
        raise Failure(f"SageMaker model {name} exists with another image or model data; delete it "
                      f"(aws sagemaker delete-model --model-name {name}) or keep its image")
    config = _describe(lambda: sagemaker.describe_endpoint_config(EndpointConfigName=name))
    variant = hosting.variant(name)
    if config is None:
        sagemaker.create_endpoint_config(EndpointConfigName=name, ProductionVariants=[variant])
    elif [{k: v for k, v in old.items() if k in variant} for old in config["ProductionVariants"]] != [variant]:
        raise Failure(f"SageMaker endpoint config {name} exists with other settings; endpoint configs cannot "
                      f"change: delete it (aws sagemaker delete-endpoint-config --endpoint-config-name {name})")


def _describe(call: Callable[[], dict[str, Any]]) -> dict[str, Any] | None:
    from botocore.exceptions import ClientError

    try:
        found: dict[str, Any] = call()
    except ClientError as exc:
        message = str(exc.response.get("Error", {}).get("Message", ""))
        if error_code(exc) == "ValidationException" and ("Could not find" in message or "not find" in message):
            return None
        raise
    return found
