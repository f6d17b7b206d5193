"""Bad inputs to `batchsight model` and `batchsight dataset`: one line back each, exit 2 for a usage error,
exit 1 for a damaged package in the bucket; nothing written.

Every row (tests/bad_inputs.py) runs a real `batchsight` process. Rows that reach S3 use a moto server
started here: ``{endpoint}`` and ``{bucket}`` in their arguments are its URL and a bucket seeded with
damaged and healthy model packages (``seeded``). The rows run once `batchsight_tools.cli` lists the
commands (``model`` -> batchsight_tools.models.cli, ``dataset`` -> batchsight_tools.dataset.cli); the
modules' ``main(argv)`` are tested directly in test_models_*.py and test_dataset_*.py.
"""
from __future__ import annotations

import dataclasses
import hashlib
import io
import json
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from PIL import Image

from batchsight_tools.cli import COMMANDS
from tests.bad_inputs import BadInput, check
from tests.tools.models_support import CREDENTIALS, REGION

pytestmark = pytest.mark.skipif(not {"model", "dataset"} <= COMMANDS.keys(),
                                reason="batchsight_tools.cli does not list the model and dataset commands yet")
USAGE, FAILURE = 2, 1
BUCKET = "bad-inputs-models"
S3 = ["--endpoint-url", "{endpoint}", "--region", REGION]
REGISTRY = ["--bucket", "{bucket}", *S3]


def _jpeg(shade: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (32, 32), (shade, shade, shade)).save(out, "JPEG")
    return out.getvalue()


NORMALS = {f"one/normal/{n}.jpg": _jpeg(100 + n) for n in range(4)}
GONE = hashlib.sha256(b"an image nobody uploaded").hexdigest()
GONE_LINE = {"source-ref": f"s3://{BUCKET}/datasets/gone/images/{GONE}.jpg", "anomaly-label": 1,
             "anomaly-label-metadata": {"class-name": "anomaly", "image-id": GONE,
                                        "type": "groundtruth/image-classification"}}
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/batchsight-detector:1"
ROLE = "arn:aws:iam::123456789012:role/SageMakerExecution"

CASES = [
    BadInput("fit on a dataset with no images", ["model", "fit", "--dataset", "{tmp}/empty", "--output", "m.npz"],
             USAGE, r"--folder .*empty/normal holds no images", {"empty/normal/.keep": "", "empty/anomaly/.keep": ""}),
    BadInput("fit on a one-class dataset", ["model", "fit", "--dataset", "{tmp}/one", "--output", "m.npz"], USAGE,
             r"--dataset .*one holds only normal images \(4\); a fit is evaluated on normal and anomaly images",
             NORMALS),
    BadInput("fit on a manifest line that is not JSON", ["model", "fit", "--dataset", "{tmp}/m.jsonl", "--output",
                                                         "m.npz"], USAGE,
             r"m\.jsonl line 2: not JSON .*; build it with `batchsight dataset build`",
             {"m.jsonl": json.dumps(GONE_LINE) + "\n{\n"}),
    BadInput("fit on a manifest whose image is missing", ["model", "fit", "--dataset", "{tmp}/m.jsonl", "--output",
                                                          "m.npz", *S3], USAGE,
             rf"m\.jsonl line 1: image s3://{BUCKET}/datasets/gone/images/{GONE}\.jpg is missing",
             {"m.jsonl": json.dumps(GONE_LINE) + "\n"}),
    BadInput("evaluate a file that is not a model", ["model", "evaluate", "--model", "{tmp}/m.npz", "--dataset",
                                                     "{tmp}/one"], USAGE, r"m\.npz", {"m.npz": "not a model"}),
    BadInput("fit written onto a folder", ["model", "fit", "--dataset", "{tmp}/one", "--output", "{tmp}/one"],
             USAGE, r"--output .*one is a folder; give a file name", NORMALS),
    BadInput("deploy an unknown version", ["model", "deploy", *REGISTRY, "--name", "good", "--version", "9"], USAGE,
             r"model good has no version 9; the versions are 1 \(`batchsight model list`\)"),
    BadInput("deploy a package that is not JSON", ["model", "deploy", *REGISTRY, "--name", "badjson", "--version",
                                                   "1"], FAILURE,
             r"models/badjson/1/package\.json is not JSON .*the package is damaged; publish it again"),
    BadInput("deploy a package whose model file is missing", ["model", "deploy", *REGISTRY, "--name", "nofile",
                                                              "--version", "1"], FAILURE,
             r"models/nofile/1/model\.npz: no such object: version 1's model file is missing"),
    BadInput("deploy a package whose model file changed", ["model", "deploy", *REGISTRY, "--name", "mismatch",
                                                           "--version", "1"], FAILURE,
             r"models/mismatch/1/model\.npz: checksum mismatch: its SHA-256 is [0-9a-f]{12}\.\.\., package\.json says"),
    BadInput("list a model that has no versions", ["model", "list", *REGISTRY, "--name", "nothing"], USAGE,
             r"model nothing has no versions in s3://bad-inputs-models .*publish one with `batchsight model publish`"),
    BadInput("roll back past the first version", ["model", "rollback", *REGISTRY, "--name", "good"], USAGE,
             r"model good has no earlier current version to roll back to \(history: 1\)"),
    BadInput("promote without a candidate", ["model", "promote", *REGISTRY, "--name", "good"], USAGE,
             r"model good has no candidate to promote; set one with `batchsight model deploy --candidate N`"),
    BadInput("deploy nothing", ["model", "deploy", *REGISTRY, "--name", "good"], USAGE,
             r"give --version N \(make it current\), --candidate N \(run it in shadow\) or --gateways ARN"),
    BadInput("deploy version zero", ["model", "deploy", "--bucket", "b-1", "--version", "0"], USAGE,
             r"argument --version: '0' is not a version: versions are 1, 2, 3"),
    BadInput("deploy to gateways that are not a thing group", ["model", "deploy", "--bucket", "b-1", "--gateways",
                                                               "line3"], USAGE,
             r"argument --gateways: 'line3' is not a thing group ARN"),
    BadInput("publish with a margin above 1", ["model", "publish", "--bucket", "b-1", "--model", "m.npz", "--dataset",
                                               "d", "--margin", "2"], USAGE,
             r"argument --margin: must be a number from 0 to 1, got '2'"),
    BadInput("publish under a name S3 keys should not hold", ["model", "publish", "--bucket", "b-1", "--name", "a/b",
                                                              "--model", "m.npz", "--dataset", "d"], USAGE,
             r"argument --name: 'a/b' is not a model name"),
    BadInput("package for SageMaker with an image outside ECR", ["model", "package", "--sagemaker", "--bucket", "b-1",
                                                                  "--version", "1", "--image", "nginx:latest",
                                                                  "--role", ROLE], USAGE,
             r"argument --image: 'nginx:latest' is not an ECR image URI"),
    BadInput("package for SageMaker with a role that is not an ARN", ["model", "package", "--sagemaker", "--bucket",
                                                                       "b-1", "--version", "1", "--image", IMAGE,
                                                                       "--role", "admin"], USAGE,
             r"argument --role: 'admin' is not an IAM role ARN"),
    BadInput("build a dataset with no source", ["dataset", "build", "--bucket", "b-1", "--name", "d"], USAGE,
             r"give at least one source: --folder DIR"),
    BadInput("build a dataset into a bucket name S3 refuses", ["dataset", "build", "--bucket", "Model_Bucket",
                                                               "--name", "d", "--folder", "x"], USAGE,
             r"argument --bucket: 'Model_Bucket' is not an S3 bucket name .*ModelBucketName"),
    BadInput("build a dataset from a missing folder", ["dataset", "build", "--bucket", "b-1", "--name", "d",
                                                       "--folder", "{tmp}/none"], USAGE,
             r"--folder .*none: no such folder; give a folder with normal/ and anomaly/"),
]


def _package(name: str, model: bytes) -> bytes:
    return json.dumps({"v": 1, "name": name, "version": "1", "files": {"model": {
        "key": "model.npz", "sha256": hashlib.sha256(model).hexdigest(), "bytes": len(model)}}}).encode()


@pytest.fixture(scope="module")
def seeded() -> Iterator[str]:
    """A moto server and a bucket: models good (1, current), badjson, nofile and mismatch."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    s3 = boto3.client("s3", endpoint_url=endpoint, region_name=REGION, aws_access_key_id="testing",
                      aws_secret_access_key="testing")
    s3.create_bucket(Bucket=BUCKET)
    model = b"model bytes"
    for name in ("good", "badjson", "nofile", "mismatch"):
        index = {"v": 1, "name": name, "current": "1", "candidate": None, "history": ["1"], "updated_at": "x",
                 "versions": {"1": {"created_at": "x", "package": f"models/{name}/1/package.json", "auroc": 1,
                                    "f1": 1}}}
        s3.put_object(Bucket=BUCKET, Key=f"models/{name}/index.json", Body=json.dumps(index).encode())
        s3.put_object(Bucket=BUCKET, Key=f"models/{name}/1/package.json",
                      Body=b"{not json" if name == "badjson" else _package(name, model))
        if name != "nofile":
            s3.put_object(Bucket=BUCKET, Key=f"models/{name}/1/model.npz",
                          Body=b"changed" if name == "mismatch" else model)
    yield endpoint
    server.stop()


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_bad_input(case: BadInput, seeded: str, tmp_path: Path) -> None:
    argv = [arg.replace("{endpoint}", seeded).replace("{bucket}", BUCKET) for arg in case.argv]
    check(dataclasses.replace(case, argv=argv, environment={**CREDENTIALS, **case.environment}), tmp_path)


def test_there_are_enough_rows() -> None:
    assert len(CASES) >= 10 and len({case.name for case in CASES}) == len(CASES)
