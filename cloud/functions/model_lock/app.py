"""ModelLock function: take, renew, hand over and release the model lock for an execution.

The lock itself (a DynamoDB item with a lease, conditional writes) is in
``batchsight_pipeline.lock``, shared with the reaper and the model control's stop. Actions:

- ``acquire``, ``renew``, ``release``: as their names say; a lost renew raises LockLost.
- ``handover``: near the history quota, pass the lock to the successor (history.successor_name)
  and start it with the hosted model and the last check (continue-as-new); if it cannot be
  started, take the lock back and answer ``handed_over`` False, so the execution drains on.
- ``continue``: after the release, work arrived but the history is long: start the successor
  with a plain input (it takes the lock itself); ``handed_over`` False when it could not.
- ``takeover``: the successor's first step, confirming the lock was handed to it; ``held`` False
  (never LockLost) when it was not, and the successor ends without touching the model.

The function starts the successor itself, not a ``states:startExecution`` Task: passing the lock
and starting the execution are then one step that undoes the first when the second fails.
"""

from __future__ import annotations

import time
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.metrics import MetricUnit
from botocore.exceptions import BotoCoreError, ClientError

from batchsight_pipeline import history
from batchsight_pipeline.aws import client
from batchsight_pipeline.lock import LockLost, acquire, hand_over, reclaim, release, renew
from batchsight_pipeline.metrics import HAND_OVERS, metrics
from batchsight_pipeline.routes import serving

logger = Logger(service="batchsight-model-lock")
ACTIONS = ("acquire", "renew", "release", "takeover", "handover", "continue")


def successor_input(event: dict[str, Any], route: str) -> dict[str, Any]:
    """What the successor starts from: the hosted model and the last check, its history at zero."""
    work = {**event["work"], "events": 0, "stalled": 0, "hand_over": False, "successor": ""}
    return {"v": 1, "trigger": "handover", "route": route,
            "handover": {"from": event["execution"], "model": event["model"], "work": work}}


def start(owner: str, execution_input: dict[str, Any]) -> dict[str, Any]:
    """Start the successor; ``handed_over`` False (logged) when Step Functions refused or failed."""
    try:
        name = history.start_successor(owner, execution_input, client("stepfunctions"))
    except (BotoCoreError, ClientError) as exc:
        logger.warning("successor not started; draining on", extra={"execution": owner, "error": str(exc)})
        return {"handed_over": False, "successor": ""}
    metrics.add(HAND_OVERS, MetricUnit.Count, 1)
    return {"handed_over": True, "successor": name}


def pass_on(owner: str, event: dict[str, Any], now: float, route: str) -> dict[str, Any]:
    """Hand the lock to the successor and start it; take the lock back if it could not start."""
    successor = history.successor_arn(owner)
    if not hand_over(owner, successor, now):
        raise LockLost("the model lock is no longer ours to hand over")
    result = start(owner, successor_input(event, route))
    if not result["handed_over"] and not reclaim(owner, successor, now):
        raise LockLost("the successor was not started and the lock could not be taken back")
    return result


@logger.inject_lambda_context
@metrics.log_metrics
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """``{"held": ...}``: after acquire, renew or takeover, whether this execution holds the lock;
    after release, whether another execution still does. ``{"handed_over", "successor"}`` after
    handover and continue. A lost renew raises LockLost. Every action is on the lock of the
    execution's model route, and a successor works for the same route."""
    with serving(event) as route:
        logger.append_keys(route=route)
        return act(event, route)


def act(event: dict[str, Any], route: str) -> dict[str, Any]:
    """The action on the route's lock."""
    owner, action, now = str(event["execution"]), event.get("action"), time.time()
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r}; expected {', '.join(ACTIONS)}")
    if action == "handover":
        result = pass_on(owner, event, now, route)
    elif action == "continue":
        result = start(owner, {"v": 1, "trigger": "continue", "route": route})
    elif action == "acquire":
        result = {"held": acquire(owner, now)}
    elif action == "release":
        result = {"held": not release(owner)}
    else:
        result = {"held": renew(owner, now)}
    logger.info("lock " + str(action), extra={"execution": owner, **result})
    if action == "renew" and not result["held"]:
        raise LockLost("the model lock was lost (lease expired and taken over); not draining further")
    return result
