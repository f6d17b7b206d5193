"""The checks of the cloud stack's settings (``aws:``): region, outputs, model route, result queue.

Kept apart from config.py (which holds ``AwsSettings`` and calls these) so that what a gateway
copies from the stack's outputs is checked in one place, each mistake named with where the
right value is found.
"""
from __future__ import annotations

import re
from typing import TYPE_CHECKING

from batchsight.config_parse import ConfigError

if TYPE_CHECKING:
    from batchsight.config import AwsSettings

_QUEUE_NAME = re.compile(r"[A-Za-z0-9_-]{1,80}")  # SQS queue names
_REGION = re.compile(r"[a-z]{2}(-[a-z]+)+-\d{1,2}")  # us-east-1, eu-central-2, us-gov-west-1
_ROUTE = re.compile(r"[a-z0-9][a-z0-9-]{0,39}")  # a model route (the cloud's routes.NAME)
_ROUTE_QUEUE = re.compile(r"-work-([a-z0-9-]+)$")  # a route's queue, {stack}-work-{route}


def check_aws(aws: AwsSettings) -> None:
    if not _REGION.fullmatch(aws.region):
        raise ConfigError(f"setting aws.region: {aws.region!r} is not an AWS region name: write the "
                          "stack's region, e.g. region: eu-west-1")
    missing = [f"aws.{n}" for n in ("source_bucket", "final_bucket", "queue_url", "state_machine_arn")
               if not getattr(aws, n)]
    if missing:
        raise ConfigError(f"setting {missing[0]} is empty: copy it from the cloud stack's outputs")
    _check_route(aws)


def check_result_queue(queue: str) -> None:
    """The queue results are pushed to (empty: none) must be a valid SQS queue name."""
    if queue and not _QUEUE_NAME.fullmatch(queue):
        raise ConfigError(f"setting aws.result_queue_prefix: the result queue name {queue!r} must be 1-80 letters, "
                          "digits, '-' or '_' (a device id without '.'); or set results.push: false")


def _check_route(aws: AwsSettings) -> None:
    """The model route and its queue agree: images in another route's queue would be judged by its model."""
    if not _ROUTE.fullmatch(aws.model):
        raise ConfigError(f"setting aws.model: {aws.model!r} is not a model route name (1-40 lower-case "
                          "letters, digits and '-'): write one that `batchsight model routes` lists, or default")
    queue = aws.queue_url.rstrip("/").rsplit("/", 1)[-1]
    route_queue = _ROUTE_QUEUE.search(queue)
    if aws.model != "default" and not queue.endswith(f"-work-{aws.model}"):
        raise ConfigError(f"setting aws.queue_url: model route {aws.model!r} has its own queue, STACK-work-"
                          f"{aws.model}: copy the URL `batchsight model route {aws.model}` printed")
    if aws.model == "default" and route_queue:
        raise ConfigError(f"setting aws.queue_url: {queue} is model route {route_queue.group(1)!r}'s queue: set "
                          f"aws.model: {route_queue.group(1)}, or give the stack output ImageQueueUrl")
