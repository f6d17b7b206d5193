"""`batchsight model package --sagemaker`: model.tar.gz, the SageMaker Model and EndpointConfig (moto server),
and the container of cloud/sagemaker/ checked without Docker: its files, and its entry serving the archive's model."""
from __future__ import annotations

import io
import os
import re
import signal
import subprocess
import sys
import tarfile
import time
import urllib.request
from pathlib import Path

import pytest

from batchsight_pipeline.backends.sagemaker import map_response
from batchsight_tools.models import sagemaker
from batchsight_tools.models.cli import main
from tests.support import REPO
from tests.tools import models_support
from tests.tools.models_support import Aws, Fitted

moto_endpoint, aws, labelled, fitted = (models_support.moto_endpoint, models_support.aws, models_support.labelled,
                                        models_support.fitted)
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/batchsight-detector:1"
ROLE = "arn:aws:iam::123456789012:role/SageMakerExecution"
CONTAINER = REPO / "cloud" / "sagemaker"


@pytest.fixture
def published(aws: Aws, labelled: Path, fitted: Fitted) -> Aws:
    """Version 1 of a model named after the bucket: SageMaker names are one namespace in the moto server."""
    assert main(["publish", "--bucket", aws.bucket, "--name", aws.bucket, "--model", str(fitted.good), "--dataset",
                 str(labelled), *aws.args]) == 0
    return aws


def _package(aws: Aws, *extra: str) -> int:
    return main(["package", "--sagemaker", "--bucket", aws.bucket, "--name", aws.bucket, "--version", "1", "--image",
                 IMAGE, "--role", ROLE, *extra, *aws.args])


def test_the_archive_holds_the_model_file_at_its_root_the_same_bytes_every_time(fitted: Fitted) -> None:
    model = fitted.good.read_bytes()
    archive = sagemaker.tarball(model)
    assert sagemaker.tarball(model) == archive
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
        [member] = tar.getmembers()
        assert (member.name, member.mode, member.isfile()) == ("model.npz", 0o644, True)
        assert tar.extractfile(member).read() == model  # type: ignore[union-attr]


def test_resource_names_are_what_sagemaker_accepts() -> None:
    assert sagemaker.resource_name("inspection_v2.1", "3") == "inspection-v2-1-v3"
    assert re.match(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$", sagemaker.resource_name("x" * 64, "123456789"))


def test_package_uploads_the_archive_and_creates_the_model_and_endpoint_config(
        published: Aws, fitted: Fitted, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _package(published, "--output", str(tmp_path)) == 0
    key = f"sagemaker/{published.bucket}/1/model.tar.gz"
    name = f"{published.bucket}-v1"
    archive = published.s3.get_object(Bucket=published.bucket, Key=key)["Body"].read()
    assert archive == (tmp_path / "model.tar.gz").read_bytes() == sagemaker.tarball(fitted.good.read_bytes())
    client = published.client("sagemaker")
    model = client.describe_model(ModelName=name)
    assert model["PrimaryContainer"]["Image"] == IMAGE and model["ExecutionRoleArn"] == ROLE
    assert model["PrimaryContainer"]["ModelDataUrl"] == f"s3://{published.bucket}/{key}"
    variants = client.describe_endpoint_config(EndpointConfigName=name)["ProductionVariants"]
    assert [(v["ModelName"], v["InstanceType"], v["InitialInstanceCount"]) for v in variants] == [
        (name, "ml.m5.large", 1)]
    assert f"SageMakerEndpointConfigName={name}" in capsys.readouterr().out
    assert _package(published) == 0                      # again: the same archive and resources are kept
    assert capsys.readouterr().out.startswith(f"kept s3://{published.bucket}/{key}")


def test_a_serverless_endpoint_config(published: Aws) -> None:
    assert _package(published, "--serverless-memory", "2048", "--serverless-concurrency", "3") == 0
    [variant] = published.client("sagemaker").describe_endpoint_config(
        EndpointConfigName=f"{published.bucket}-v1")["ProductionVariants"]
    assert variant["ServerlessConfig"] == {"MemorySizeInMB": 2048, "MaxConcurrency": 3}


def test_an_existing_model_with_another_image_is_not_replaced(published: Aws,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    name = f"{published.bucket}-v1"
    published.client("sagemaker").create_model(ModelName=name, ExecutionRoleArn=ROLE,
                                               PrimaryContainer={"Image": IMAGE.replace(":1", ":0")})
    assert _package(published) == 1
    assert f"SageMaker model {name} exists with another image or model data" in capsys.readouterr().err


def test_package_without_the_sagemaker_flag_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["package", "--bucket", "model-bucket", "--version", "1", "--image", IMAGE, "--role", ROLE])
    assert exit_.value.code == 2
    assert "the following arguments are required: --sagemaker" in capsys.readouterr().err


def test_the_dockerfile_copies_what_the_repository_has_and_runs_serve() -> None:
    dockerfile = (CONTAINER / "Dockerfile").read_text()
    copied = re.findall(r"^COPY\s+(\S+)\s+\S+$", dockerfile, re.MULTILINE)
    assert copied and all((REPO / source).exists() for source in copied), copied
    assert re.search(r'^CMD \["serve"\]$', dockerfile, re.MULTILINE)
    assert "EXPOSE 8080" in dockerfile
    ignored = (CONTAINER / "Dockerfile.dockerignore").read_text().split()
    assert ignored[ignored.index("*") + 1:] and all(f"!{source}" in ignored or f"!{source}/" in ignored
                                                    for source in copied)
    assert os.access(CONTAINER / "serve", os.X_OK)


def test_the_containers_entry_serves_the_archives_model_as_sagemaker_calls_it(
        fitted: Fitted, labelled: Path, tmp_path: Path) -> None:
    """SageMaker unpacks model.tar.gz into /opt/ml/model and runs `serve`; here into a folder, with the
    entry's MODEL_FILE and SAGEMAKER_BIND_TO_PORT pointing at it and a free port (no Docker here)."""
    with tarfile.open(fileobj=io.BytesIO(sagemaker.tarball(fitted.good.read_bytes())), mode="r:gz") as tar:
        tar.extractall(tmp_path / "opt-ml-model", filter="data")
    port = models_support.free_port()
    env = {**os.environ, "MODEL_FILE": str(tmp_path / "opt-ml-model" / "model.npz"),
           "SAGEMAKER_BIND_TO_PORT": str(port), "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    process = subprocess.Popen(["sh", str(CONTAINER / "serve")], env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{url}/ping", timeout=2) as ping:
                    assert ping.status == 200
                break
            except OSError:
                assert process.poll() is None and time.monotonic() < deadline, "serve did not start"
                time.sleep(0.2)
        image = next((labelled / "anomaly").iterdir()).read_bytes()
        request = urllib.request.Request(f"{url}/invocations", data=image, headers={"Content-Type": "image/jpeg"})
        with urllib.request.urlopen(request, timeout=30) as response:
            result = map_response(response.read())   # what the pipeline's sagemaker backend makes of it
        assert isinstance(result["IsAnomalous"], bool) and 0 <= result["Confidence"] <= 1
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
    assert process.returncode == 0, process.stderr.read() if process.stderr else ""
