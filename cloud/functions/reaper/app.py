"""Reaper: stop a model that no running execution owns (scheduled).

Every path out of the state machine stops the model, but an execution stopped by hand, or
one whose final stop exhausted its retries, ends without that. The reaper closes the gap:
if the model is up and the lock's owner is not a RUNNING execution (or there is no lock),
it stops the model and clears the stale lock. A lock handed over moments ago (history.py) names a
successor that may not be running yet: it is left alone for HANDOVER_GRACE_SECONDS.

It checks every model route of the stack (routes.py), each on its own lock, and one route it
cannot check (its parameter broken, its backend refusing) is logged and does not stop the others.
It is also the safety net of the routes beyond ``default`` (whose safety net is the template's
schedule): a route with images waiting and no execution holding its lock gets one started, for
images whose gateway enqueued them and then never started their batch (a gateway replaced, say).
"""
from __future__ import annotations

import json
import time
from typing import Any

from aws_lambda_powertools import Logger
from botocore.exceptions import ClientError

from batchsight_pipeline.aws import client
from batchsight_pipeline.backends import backend_from_settings
from batchsight_pipeline.backends.base import STOPPED
from batchsight_pipeline.environment import SettingsError, optional
from batchsight_pipeline.lock import holder, release
from batchsight_pipeline.routes import DEFAULT, names, serving
from batchsight_pipeline.settings import Settings

logger = Logger(service="batchsight-reaper")
HANDOVER_GRACE_SECONDS = 300  # a successor is started within seconds of the hand-over


def execution_running(execution_arn: str) -> bool:
    """Whether the execution still runs; one that no longer exists (history expired) does not."""
    try:
        status = client("stepfunctions").describe_execution(executionArn=execution_arn)["status"]
    except ClientError as exc:
        if exc.response["Error"]["Code"] == "ExecutionDoesNotExist":
            return False
        raise
    return status == "RUNNING"


@logger.inject_lambda_context
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Per model route: what it did, as ``reap`` says, or the error that kept it from checking."""
    done: dict[str, Any] = {}
    for route in names():
        try:
            with serving({"route": route}):
                done[route] = reap(route)
                if route != DEFAULT:
                    done[route]["started"] = sweep(route)
        except (SettingsError, ClientError) as exc:
            logger.error("model route not checked; fix it, the others were", extra={"route": route, "error": str(exc)})
            done[route] = {"action": "error", "error": str(exc)}
    return done


def sweep(route: str) -> str:
    """Start an execution for the route when images wait in its queue and nobody holds its lock;
    the execution's name, or "" when none was needed (or the stack names no state machine)."""
    settings, machine = Settings.from_env(), optional("STATE_MACHINE_ARN")
    if not machine or holder(settings.lock_table) is not None:
        return ""
    waiting = client("sqs").get_queue_attributes(QueueUrl=settings.queue_url,
                                                 AttributeNames=["ApproximateNumberOfMessages"])["Attributes"]
    if not int(waiting["ApproximateNumberOfMessages"]):
        return ""
    name = f"sweep-{route}-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}"
    client("stepfunctions").start_execution(stateMachineArn=machine, name=name, input=json.dumps(
        {"v": 1, "trigger": "schedule", "route": route}))
    logger.info("images waiting with no execution: one started", extra={"route": route, "execution": name})
    return name


def reap(route: str) -> dict[str, Any]:
    """What it did ("none", "cleared-lock" or "stopped"), the model's status it found, the lock's owner."""
    settings = Settings.from_env()
    backend = backend_from_settings(settings)
    # a serverless backend bills nothing between images: only a dead owner's lock is left to clear
    status = backend.hosting_status() if backend.idle_cost else STOPPED
    lock = holder(settings.lock_table)
    owner = lock.owner if lock else None
    if owner and execution_running(owner):
        return {"action": "none", "model": status, "owner": owner}
    if lock and time.time() - lock.handed_over_at < HANDOVER_GRACE_SECONDS:
        return {"action": "none", "model": status, "owner": owner}  # its successor is being started
    if status == STOPPED:
        if owner:
            release(owner)  # a dead owner's lock, with nothing hosted: just clear it
        return {"action": "none" if not owner else "cleared-lock", "model": status, "owner": owner}
    backend.stop()
    if owner:
        release(owner)
    logger.warning("reaped a model no running execution owned",
                   extra={"route": route, "model": backend.model_id, "status": status, "owner": owner})
    return {"action": "stopped", "model": status, "owner": owner}
