"""The `lambda` backend's drain function: its unzipped size as deployed, and its cold start.

    python bench/lambda_cold_start.py [--images ../shared/data/casting] [--model MODEL.npz]

1. `sam build` of cloud/template.yaml for x86_64 and arm64 (cp313 wheels, as deployed): the
   drain function's package plus its two layers, unzipped (Lambda's limit: 250 MB).
2. A model: fitted with patchcore on the set's train/normal (or --model), published and deployed
   with `batchsight model publish` / `model deploy` into a moto S3 bucket over HTTP.
3. A fresh process with only the drain's code, its layers (built again for this machine's Python)
   and boto3: the handler's import, the backend's start (index, package fetch, checksum), the first
   verdict (detector import, model load, one image), then warm verdicts, the baseline the cold
   start is compared with.
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
from pathlib import Path

from batchsight_tools.bench.coldstart import (
    ColdStart,
    machine,
    runtime_boto3,
    sam_build,
    time_cold_start,
    unzipped,
)
from batchsight_tools.bench.heading import heading

DRAIN = ("DrainFunction", "PipelineLayer", "DetectorLayer")
LIMIT = 250 * 1024 * 1024


def publish(work: Path, images: Path, model: Path | None) -> tuple[dict[str, str], list[Path]]:
    """A moto server with a deployed model; the drain function's environment for it."""
    import logging

    from moto.server import ThreadedMotoServer

    from batchsight_detector.cli import main as detector
    from batchsight_tools.models.cli import main as models

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # a line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    environment = {"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                   "AWS_DEFAULT_REGION": "us-east-1", "MODEL_BUCKET": "bench-models", "MODEL_NAME": "inspection",
                   "POWERTOOLS_METRICS_NAMESPACE": "batchsight", "POWERTOOLS_LOG_LEVEL": "WARNING",
                   "MODEL_CACHE_DIR": str(work / "lambda-tmp")}
    import boto3

    os.environ.update({k: v for k, v in environment.items() if k.startswith("AWS_")})  # for the commands below
    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="testing",
                 aws_secret_access_key="testing").create_bucket(Bucket="bench-models")
    if model is None:
        model = work / "model.npz"
        if detector(["fit", "--normal", str(images / "train" / "normal"), "--output", str(model)]):
            raise SystemExit("fitting the model failed")
    aws = ["--bucket", "bench-models", "--endpoint-url", endpoint, "--region", "us-east-1"]
    if models(["publish", *aws, "--model", str(model), "--dataset", str(images / "test"), "--force"]) \
            or models(["deploy", *aws, "--version", "1"]):
        raise SystemExit("publishing the model failed")
    tests = sorted((images / "test" / "normal").iterdir())[:5] + sorted((images / "test" / "anomaly").iterdir())[:5]
    return environment, tests


def table(sizes: dict[str, int], cold: ColdStart) -> str:
    mb = {arch: f"{size / 1e6:.1f} MB ({size / LIMIT:.0%} of the limit)" for arch, size in sizes.items()}
    rows = [
        ("drain package + layers, x86_64, unzipped", mb["x86_64"]),
        ("drain package + layers, arm64, unzipped", mb["aarch64"]),
        ("handler import (Powertools, pipeline)", f"{cold.import_s:.2f} s"),
        ("start: index, package fetch, checksum", f"{cold.start_s:.2f} s"),
        ("first verdict: detector import, model load, one image", f"{cold.first_detect_s:.2f} s"),
        ("cold start, import to first verdict", f"{cold.total_s:.2f} s"),
        ("warm verdict (baseline)", f"{cold.warm_detect_s * 1000:.0f} ms"),
        ("cold start / warm verdict", f"{cold.total_s / cold.warm_detect_s:.0f}x"),
        ("timed on", f"{machine()}; Lambda runs Python 3.13 at 1 vCPU for 1769 MB"),
    ]
    return "\n".join([heading(), "", "| measure | value |", "|---|---|", *(f"| {a} | {b} |" for a, b in rows)])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=Path, default=Path("../shared/data/casting"),
                        help="a labelled set: train/normal, test/{normal,anomaly} (default %(default)s)")
    parser.add_argument("--model", type=Path, help="a fitted model file (default: fit patchcore on --images)")
    args = parser.parse_args(argv)
    if not (args.images / "test" / "anomaly").is_dir():
        parser.error(f"{args.images} has no test/anomaly/: give a labelled set with --images")
    with tempfile.TemporaryDirectory(prefix="batchsight-coldstart-") as folder:
        work = Path(folder)
        sizes = {arch: unzipped(sam_build(work / f"sam-{arch}", python="3.13", arch=arch), *DRAIN)
                 for arch in ("x86_64", "aarch64")}
        here = sam_build(work / "sam-here", python=".".join(platform.python_version_tuple()[:2]),
                         arch=platform.machine())
        environment, images = publish(work, args.images, args.model)
        cold = time_cold_start(here, runtime_boto3(work / "boto3"), environment, images)
    print(table(sizes, cold))
    return 0 if max(sizes.values()) < LIMIT else 1


if __name__ == "__main__":
    sys.exit(main())
