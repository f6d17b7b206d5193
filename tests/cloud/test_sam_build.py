"""`sam build` of cloud/template.yaml: each function's code package holds only its handler.

The build runs for real (aws-sam-cli, cloud/Makefile, pip fetching Lambda's cp313 manylinux
wheels), offline from this machine's Python: no python3.13, no Docker. What it proves is what
the issue asks: a function's deployment package holds only what it imports, and what the
functions share comes in the layer they name.
"""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.cloud.tooling import sam
from tests.support import REPO

FUNCTIONS = ("CheckWorkFunction", "DrainFunction", "ModelControlFunction", "ModelLockFunction", "ReaperFunction")


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sam") / "build"
    result = subprocess.run(
        [sam(), "build", "--template", str(REPO / "cloud" / "template.yaml"), "--build-dir", str(out)],
        cwd=REPO / "cloud", capture_output=True, text=True, timeout=600,
        env={**os.environ, "AWS_DEFAULT_REGION": "us-east-1", "SAM_CLI_TELEMETRY": "0"})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return out


def _files(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()}


@pytest.mark.parametrize("function", FUNCTIONS)
def test_a_functions_package_is_its_handler_alone(built: Path, function: str) -> None:
    assert _files(built / function) == {"app.py"}


def test_the_pipeline_layer_holds_the_shared_package_and_powertools_only(built: Path) -> None:
    python = built / "PipelineLayer" / "python"
    top = {p.name.split("-")[0] for p in python.iterdir() if not p.name.endswith(".dist-info")}
    assert "batchsight_pipeline" in top and "aws_lambda_powertools" in top
    assert not top & {"numpy", "PIL", "onnxruntime", "batchsight", "batchsight_tools", "moto", "boto3"}
    shared = _files(python / "batchsight_pipeline")
    assert "backends/base.py" in shared and not any(name.endswith((".pyc", ".onnx")) for name in shared)


def test_every_function_names_the_pipeline_layer_and_only_the_drain_the_detector(built: Path) -> None:
    import yaml

    resources = yaml.safe_load((built / "template.yaml").read_text())["Resources"]  # sam writes long forms
    for function in FUNCTIONS:
        properties = resources[function]["Properties"]
        assert properties["CodeUri"] == function
        assert properties["Layers"][0] == {"Ref": "PipelineLayer"}
        detector = [layer for layer in properties["Layers"] if "DetectorLayer" in str(layer)]
        assert bool(detector) == (function == "DrainFunction"), function


def test_the_detector_layer_holds_the_detector_and_its_wheels_within_lambdas_limit(built: Path) -> None:
    python = built / "DetectorLayer" / "python"
    top = {p.name for p in python.iterdir()}
    assert {"batchsight_detector", "numpy", "onnxruntime", "PIL"} <= top
    assert not top & {"batchsight", "batchsight_pipeline", "batchsight_tools", "moto", "torch"}
    assert any(p.suffix == ".onnx" for p in (python / "batchsight_detector").iterdir())
    unzipped = sum(f.stat().st_size for layer in ("DetectorLayer", "PipelineLayer", "DrainFunction")
                   for f in (built / layer).rglob("*") if f.is_file())
    assert unzipped < 250 * 1024 * 1024, "Lambda's limit for a function and its layers, unzipped"
