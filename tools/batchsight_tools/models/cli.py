"""batchsight model: fit, evaluate, publish, deploy and roll back versions of the detector, on S3.

    batchsight model fit --dataset DATASET --output MODEL.npz          (the training split)
    batchsight model evaluate --model MODEL.npz --dataset DATASET      (the held-out split)
    batchsight model publish --bucket B --model MODEL.npz --dataset DATASET [--margin 0.02] [--force]
    batchsight model list --bucket B
    batchsight model deploy --bucket B (--version N | --candidate N) [--gateways THING_GROUP_ARN [--apply]]
    batchsight model rollback|promote --bucket B [--gateways THING_GROUP_ARN [--apply]]
    batchsight model package --sagemaker --bucket B --version N --image ECR_URI --role ROLE_ARN
    batchsight model route NAME --routes-path /batchsight/STACK/models --queue-url URL [--set K=V ...]
    batchsight model routes --routes-path /batchsight/STACK/models --queue-url URL

DATASET is s3://B/datasets/NAME/manifest.jsonl (`batchsight dataset build`), a manifest file,
or a folder with normal/ and anomaly/. One image in five (by image id) is held out for
evaluation, the same ones every time. Versions (models/NAME/N/ in the model bucket, the stack
output ModelBucketName) are immutable; the index names the current one, which the pipeline's
lambda backend uses from its next start. A route is another model on the same stack, with its
own queue and lock (the gateways of its lines set aws.model to it). A wrong argument is one
line and exit 2; a damaged package, an S3 error or a refusal by the gate is one line and exit 1.
"""
from __future__ import annotations

import argparse
from collections.abc import Callable

from batchsight_tools.models import arguments, commands, deploying, fitting, routes
from batchsight_tools.models.arguments import Clients
from batchsight_tools.models.gate import DEFAULT_MARGIN
from batchsight_tools.number_arguments import whole_number

PROG = "batchsight model"
DATASET_HELP = ("s3://BUCKET/datasets/NAME/manifest.jsonl, a manifest file, or a folder with normal/ and anomaly/ "
                "(required)")
Handler = Callable[[argparse.Namespace, Clients], int]
HANDLERS: dict[str, Handler] = {
    "fit": commands.fit, "evaluate": commands.evaluate, "publish": commands.publish, "list": commands.list_versions,
    "deploy": deploying.deploy, "rollback": deploying.rollback, "promote": deploying.promote,
    "package": deploying.package, "route": routes.route, "routes": routes.list_routes,
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    fit = sub.add_parser("fit", help="fit a model on a dataset's training split",
                         description="Fit a model on the training split of a dataset (as `batchsight fit` does).")
    fit.add_argument("--dataset", required=True, help=DATASET_HELP)
    fit.add_argument("--output", required=True, metavar="MODEL.npz", help="model file to write (required)")
    fitting.add_options(fit)
    arguments.add_aws(fit)

    evaluate = sub.add_parser("evaluate", help="measure a model on a dataset's held-out split",
                              description="AUROC, precision/recall/F1 and latency on the held-out images.")
    evaluate.add_argument("--model", required=True, metavar="MODEL.npz", help="model file from model fit (required)")
    evaluate.add_argument("--dataset", required=True, help=DATASET_HELP)
    arguments.add_aws(evaluate)

    publish = sub.add_parser("publish", help="publish a fitted model as the next version",
                             description="Evaluate on the held-out split, gate against the current version on the "
                                         "same images, and publish models/NAME/N/ (package.json + model file).")
    arguments.add_registry(publish)
    publish.add_argument("--model", required=True, metavar="MODEL.npz", help="model file from model fit (required)")
    publish.add_argument("--dataset", required=True, help=DATASET_HELP.replace("(required)", "fitted on (required)"))
    publish.add_argument("--margin", type=arguments.fraction, default=DEFAULT_MARGIN,
                         help="refuse if AUROC or F1 is more than this below the current version's on the same "
                              f"images (default {DEFAULT_MARGIN})")
    publish.add_argument("--force", action="store_true", help="publish even if the gate refuses (default: off)")

    listing = sub.add_parser("list", help="the versions, their metrics, which is current and candidate",
                             description="The versions of a model, with AUROC and F1, current and candidate.")
    arguments.add_registry(listing)

    deploy = sub.add_parser("deploy", help="make a version current or candidate, and send it to gateways",
                            description="Make a version current (the pipeline uses it from its next start) or the "
                                        "candidate (run in shadow), and write/apply the Greengrass deployment.")
    arguments.add_registry(deploy)
    which = deploy.add_mutually_exclusive_group()
    which.add_argument("--version", type=arguments.version, help="make this version current (default: none)")
    which.add_argument("--candidate", type=arguments.version,
                       help="make this version the candidate the gateways run in shadow (default: none)")
    deploying.add_gateway_options(deploy)

    for name, text in (("rollback", "make the previous current version current again"),
                       ("promote", "make the candidate the current version")):
        command = sub.add_parser(name, help=text, description=text[0].upper() + text[1:] + ".")
        arguments.add_registry(command)
        deploying.add_gateway_options(command)

    package = sub.add_parser("package", help="a version as a SageMaker real-time model",
                             description="Write model.tar.gz and create the SageMaker Model and EndpointConfig; the "
                                         "container image is built and pushed by hand (cloud/sagemaker/README.md).")
    arguments.add_registry(package)
    package.add_argument("--sagemaker", action="store_true", required=True,
                         help="make a SageMaker model: model.tar.gz, Model, EndpointConfig (required; the only kind)")
    package.add_argument("--version", required=True, type=arguments.version, help="the version (required)")
    package.add_argument("--image", required=True, type=deploying.image,
                         help="the ECR URI of the cloud/sagemaker image (required)")
    package.add_argument("--role", required=True, type=deploying.role,
                         help="the SageMaker execution role ARN; it reads the model bucket (required)")
    package.add_argument("--instance-type", default="ml.m5.large", help="real-time instances (default ml.m5.large)")
    package.add_argument("--instance-count", type=whole_number(1, 100), default=1, help="instances (default 1)")
    package.add_argument("--serverless-memory", type=whole_number(1024, 6144), metavar="MB",
                         help="serverless inference with this memory, 1024 to 6144 MB, instead of instances "
                              "(default: instances)")
    package.add_argument("--serverless-concurrency", type=whole_number(1, 200), default=5,
                         help="with --serverless-memory: most concurrent invocations, 1 to 200 (default 5)")
    package.add_argument("--output", metavar="DIR", help="also write model.tar.gz into this folder (default: S3 only)")
    routes.add_parsers(sub)
    return parser


def main(argv: list[str] | None = None, *, clients: Callable[[argparse.Namespace], Clients] = Clients) -> int:
    args = build_parser().parse_args(argv)
    return arguments.run(f"{PROG} {args.command}", lambda: HANDLERS[args.command](args, clients(args)))


if __name__ == "__main__":
    raise SystemExit(main())
