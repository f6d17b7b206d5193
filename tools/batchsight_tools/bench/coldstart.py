"""The ``lambda`` backend's weight and cold start: what the drain function carries, and how long
a fresh one takes from its first import to its first verdict.

The sizes are of the real `sam build` output (cp313 wheels for x86_64 and arm64, as deployed).
The cold start is timed in a fresh process that sees only what Lambda would give the drain
function: its own code package, its two layers and a boto3 (the runtime's), no site-packages.
Those layers are built again for this machine's Python (the wheels must load here); Lambda's
Python 3.13 and its CPU may differ, which the table says. The model comes from a moto S3 bucket
over HTTP, published and deployed with `batchsight model publish` and `model deploy`, so the
start pays the index read, the package fetch and the checksum, as in AWS.
"""
from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

CHILD = """
import json, os, sys, time
started = time.perf_counter()
import app
imported = time.perf_counter()
from batchsight_pipeline.backends.serverless import ServerlessDetectorBackend
backend = ServerlessDetectorBackend.from_env(start_timeout_seconds=60)
state = backend.start(run_token="cold-start")
ready = time.perf_counter()
pinned = backend.pinned(state)
images = [open(p, "rb").read() for p in sys.argv[1:]]
first = pinned.detect(images[0], content_type="image/jpeg")
judged = time.perf_counter()
for image in images[1:]:
    pinned.detect(image, content_type="image/jpeg")
warm = (time.perf_counter() - judged) / max(1, len(images) - 1)
print(json.dumps({"import_s": imported - started, "start_s": ready - imported,
                  "first_detect_s": judged - ready, "warm_detect_s": warm, "version": state.version}))
"""


@dataclass(frozen=True)
class ColdStart:
    import_s: float
    start_s: float
    first_detect_s: float
    warm_detect_s: float
    version: str

    @property
    def total_s(self) -> float:
        return self.import_s + self.start_s + self.first_detect_s


def sam_build(out: Path, *, python: str, arch: str) -> Path:
    """`sam build` of the stack with Lambda's layers built for ``python`` on ``arch``."""
    sam = shutil.which("sam") or str(Path.cwd() / ".tools" / "sam-venv" / "bin" / "sam")
    if not Path(sam).exists():
        raise SystemExit("aws-sam-cli not found: pip install aws-sam-cli, or run the tests once "
                         "(they install it into .tools/sam-venv)")
    from batchsight_tools.stack import cloud_dir

    subprocess.run([sam, "build", "--build-dir", str(out)], cwd=cloud_dir(), check=True, capture_output=True,
                   env={**os.environ, "AWS_DEFAULT_REGION": "us-east-1", "SAM_CLI_TELEMETRY": "0",
                        "LAMBDA_PYTHON": python, "LAMBDA_ARCH": arch})
    return out


def unzipped(build: Path, *parts: str) -> int:
    return sum(f.stat().st_size for part in parts for f in (build / part).rglob("*") if f.is_file())


def runtime_boto3(target: Path) -> Path:
    """The boto3 Lambda's Python runtime brings (the version installed here stands in for it)."""
    version = importlib.metadata.version("boto3")
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                    "--no-compile", "--target", str(target), f"boto3=={version}"], check=True, capture_output=True)
    return target


def time_cold_start(build: Path, boto3_dir: Path, environment: dict[str, str], images: list[Path]) -> ColdStart:
    """One fresh process, the drain's code and layers only: import, start, first and warm verdicts."""
    path = [build / "DrainFunction", build / "PipelineLayer" / "python", build / "DetectorLayer" / "python", boto3_dir]
    child = subprocess.run([sys.executable, "-S", "-c", CHILD, *map(str, images)], capture_output=True, text=True,
                           check=False, timeout=300,
                           env={**environment, "PYTHONPATH": os.pathsep.join(map(str, path)),
                                "PATH": os.environ.get("PATH", ""), "ORT_DISABLE_TELEMETRY": "1"})
    if child.returncode != 0:
        raise SystemExit(f"the cold-start process failed: {child.stderr.strip().splitlines()[-1:]}")
    return ColdStart(**json.loads(child.stdout.strip().splitlines()[-1]))


def machine() -> str:
    return f"Python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} cores"
