"""`batchsight model deploy`, `rollback`, `promote` and `package`: a published version put to use.

Two paths take a version: the pipeline, through the index's ``current`` (the ``lambda``
backend reads it at its next start, no ``sam deploy``), and the gateways, through a Greengrass
deployment of ``inference.model`` to a thing group. Every command checks the version it is
about to make current (package readable, model file present, checksum right) before it
changes anything, builds the gateway document before it changes the index, and changes the
index before it applies the gateway deployment, saying plainly which path did not follow
if the last step fails.
"""
from __future__ import annotations

import argparse
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from batchsight_detector import arguments as detector_arguments
from batchsight_tools.models import greengrass, sagemaker
from batchsight_tools.models import index as index_rules
from batchsight_tools.models.arguments import Clients, Failure, UsageError, one_line
from batchsight_tools.models.publish import now_iso
from batchsight_tools.models.registry import Registry

Change = Callable[[index_rules.Index], index_rules.Index]
THING = re.compile(r"^arn:aws[a-z-]*:iot:[a-z0-9-]+:\d{12}:(thing|thinggroup)/[A-Za-z0-9:_-]+$")
IMAGE = re.compile(r"^\d{12}\.dkr\.ecr\.[a-z0-9-]+\.amazonaws\.com(\.cn)?/[a-z0-9._/-]+"
                   r"(:[\w.-]+|@sha256:[0-9a-f]{64})?$")
ROLE = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]+$")


def deploy(args: argparse.Namespace, clients: Clients) -> int:
    registry = Registry(clients.s3, args.bucket, args.name)
    if not (args.version or args.candidate or args.gateways):
        raise UsageError("give --version N (make it current), --candidate N (run it in shadow) or --gateways ARN "
                         "(send the current version to a thing group)")
    index = registry.index()
    if args.candidate:
        current = index.get("current")
        if not current:
            raise UsageError(f"model {args.name} has no current version for a candidate to run beside; deploy one "
                             "with --version N first")
        return _switch(args, clients, registry, [args.candidate, current],
                       {"model": current, "shadow_model": args.candidate},
                       lambda idx: index_rules.set_candidate(idx, args.candidate, now_iso()))
    if args.version:
        clears = index.get("candidate") == args.version   # deploying the candidate ends its shadow run
        return _switch(args, clients, registry, [args.version], {"model": args.version,
                                                                 **({"shadow_model": ""} if clears else {})},
                       lambda idx: index_rules.deploy(idx, args.version, now_iso()))
    if not index.get("current"):
        raise UsageError(f"model {args.name} has no current version to send to gateways; give --version N")
    return _switch(args, clients, registry, [index["current"]], {"model": index["current"]}, None)


def rollback(args: argparse.Namespace, clients: Clients) -> int:
    registry = Registry(clients.s3, args.bucket, args.name)
    target = index_rules.rollback(registry.index(), now_iso())["current"]
    return _switch(args, clients, registry, [target], {"model": target},
                   lambda idx: _expect(index_rules.rollback(idx, now_iso()), target))


def promote(args: argparse.Namespace, clients: Clients) -> int:
    registry = Registry(clients.s3, args.bucket, args.name)
    target = index_rules.promote(registry.index(), now_iso())["current"]
    return _switch(args, clients, registry, [target], {"model": target, "shadow_model": ""},
                   lambda idx: _expect(index_rules.promote(idx, now_iso()), target))


def package(args: argparse.Namespace, clients: Clients) -> int:
    """model.tar.gz in S3 (and --output), then the SageMaker Model and EndpointConfig."""
    registry = Registry(clients.s3, args.bucket, args.name)
    _, model_file = registry.checked(args.version)
    archive = sagemaker.tarball(model_file)
    key = sagemaker.tarball_key(args.name, args.version)
    uploaded = sagemaker.upload_tarball(clients.s3, args.bucket, key, archive)
    if args.output:
        target = Path(args.output) / "model.tar.gz"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(archive)
    name = sagemaker.resource_name(args.name, args.version)
    hosting = sagemaker.Hosting(instance_type=args.instance_type, instance_count=args.instance_count,
                                serverless_memory_mb=args.serverless_memory,
                                serverless_concurrency=args.serverless_concurrency)
    sagemaker.create(clients.client("sagemaker"), name=name, image=args.image, model_data_url=registry.uri(key),
                     role_arn=args.role, hosting=hosting)
    print(f"{'uploaded' if uploaded else 'kept'} {registry.uri(key)}" + (f" (and {args.output}/model.tar.gz)"
                                                                            if args.output else ""))
    print(f"SageMaker Model and EndpointConfig {name}: image {args.image}")
    print(f"  the pipeline uses it with the stack parameters ModelBackend=sagemaker SageMakerEndpointConfigName={name}")
    return 0


def add_gateway_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--gateways", type=_thing, metavar="THING_GROUP_ARN",
                        help="also write the Greengrass deployment of this version for a thing group (default: "
                             "the pipeline only)")
    parser.add_argument("--output", default="greengrass-deployment.json", metavar="FILE",
                        help="with --gateways: where the deployment document goes (default greengrass-deployment.json)")
    parser.add_argument("--apply", action="store_true",
                        help="with --gateways: create the deployment (greengrassv2 CreateDeployment) (default: "
                             "only write the document)")
    parser.add_argument("--component-version", metavar="X.Y.Z",
                        help=f"with --gateways: the {greengrass.COMPONENT} version to deploy (default: the one the "
                             "group's latest deployment has)")


def image(text: str) -> str:
    if not IMAGE.match(text):
        raise argparse.ArgumentTypeError(f"{text!r} is not an ECR image URI, e.g. 123456789012.dkr.ecr.eu-west-1."
                                         "amazonaws.com/batchsight-detector:1 (cloud/sagemaker/README.md builds it)")
    return text


def role(text: str) -> str:
    if not ROLE.match(text):
        raise argparse.ArgumentTypeError(f"{text!r} is not an IAM role ARN, e.g. arn:aws:iam::123456789012:role/"
                                         "SageMakerExecution")
    return text


def _switch(args: argparse.Namespace, clients: Clients, registry: Registry, versions: list[str],
            inference: dict[str, str], change: Change | None) -> int:
    """Check the versions, write the gateway document, change the index, apply the deployment.

    ``inference`` maps the gateway settings to change (``model``, ``shadow_model``) to a version,
    or to "" to clear the setting.
    """
    for version in versions:
        registry.checked(version)
    settings = {key: greengrass.package_uri(registry.bucket, registry.prefix(version)) if version else ""
                for key, version in inference.items()}
    request = _gateway_document(args, clients, settings, versions[0])
    if change is not None:
        updated = registry.update(lambda idx: change(_existing(idx, registry)))
        print(f"{args.name}: current version {updated['current'] or 'none'}"
              + (f", candidate {updated['candidate']}" if updated.get("candidate") else "")
              + f" ({registry.uri(registry.index_key)}); the pipeline's lambda backend uses it from its next start")
    if request is None:
        return 0
    described = ", ".join(f"inference.{key} {uri or '(cleared)'}" for key, uri in settings.items())
    print(f"wrote the Greengrass deployment of {args.gateways} ({described}) to {args.output}")
    if args.apply:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            deployment = greengrass.apply(clients.client("greengrassv2"), request)
        except (BotoCoreError, ClientError) as exc:
            done = "the index is changed, " if change is not None else ""
            raise Failure(f"{done}but creating the Greengrass deployment failed: {one_line(exc)}; run again, or "
                          f"aws greengrassv2 create-deployment --cli-input-json file://{args.output}") from exc
        print(f"created Greengrass deployment {deployment}; the gateways fetch the package as they take it")
    return 0


def _gateway_document(args: argparse.Namespace, clients: Clients, inference: dict[str, str],
                      version: str) -> dict[str, Any] | None:
    if not args.gateways:
        if args.apply or args.component_version:
            raise UsageError("--apply and --component-version go with --gateways THING_GROUP_ARN")
        return None
    output = detector_arguments.output_file("--output", args.output)
    gateways = clients.client("greengrassv2")
    request = greengrass.document(args.gateways, greengrass.latest_deployment(gateways, args.gateways),
                                  inference=inference, deployment_name=f"batchsight {args.name} version {version}",
                                  component_version=args.component_version)
    try:
        output.write_text(json.dumps(request, indent=2) + "\n")
    except OSError as exc:
        raise UsageError(f"--output {output}: cannot write it ({exc.strerror or exc})") from exc
    return request


def _existing(index: index_rules.Index | None, registry: Registry) -> index_rules.Index:
    if index is None:
        raise Failure(f"{registry.uri(registry.index_key)} disappeared meanwhile; publish a version again")
    return index


def _expect(index: index_rules.Index, current: str) -> index_rules.Index:
    if index["current"] != current:
        raise Failure("the index changed meanwhile (someone else deployed); run the command again")
    return index


def _thing(text: str) -> str:
    if not THING.match(text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a thing group ARN, e.g. arn:aws:iot:eu-west-1:"
                                         "123456789012:thinggroup/line3-gateways")
    return text
