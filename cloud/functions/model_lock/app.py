"""ModelLock function: take, renew, hand over and release the model lock for an execution.

The lock itself (a DynamoDB item with a lease, conditional writes) is in
``batchsight_pipeline.lock``, shared with the reaper and the model control's stop. Actions:

- ``acquire``, ``renew``, ``release``: as their names say; a lost renew raises LockLost.
- ``handover``: near the history quota, pass the lock to the successor this execution is about
  to start (history.successor_name); answers the successor's name.
- ``takeover``: the successor's first step, confirming the lock was handed to it; ``held`` False
  (never LockLost) when it was not, and the successor ends without touching the model.
- ``reclaim``: the successor could not be started; take the lock back and keep draining.
"""
from __future__ import annotations

import time
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.metrics import MetricUnit

from batchsight_pipeline import history
from batchsight_pipeline.lock import LockLost, acquire, hand_over, reclaim, release, renew
from batchsight_pipeline.metrics import HAND_OVERS, metrics

logger = Logger(service="batchsight-model-lock")
ACTIONS = ("acquire", "renew", "release", "handover", "takeover", "reclaim")


@logger.inject_lambda_context
@metrics.log_metrics
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """``{"held": ...}``: after acquire, renew, takeover or reclaim, whether this execution holds
    the lock; after release, whether another execution still does; after a hand-over, False, with
    the successor's name."""
    owner, action = str(event["execution"]), event.get("action")
    now = time.time()
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r}; expected {', '.join(ACTIONS)}")
    result: dict[str, Any] = {}
    if action == "acquire":
        held = acquire(owner, now)
    elif action in ("renew", "takeover"):
        held = renew(owner, now)
    elif action == "release":
        held = not release(owner)
    else:
        successor = history.successor_arn(owner)
        if action == "handover":
            if not hand_over(owner, successor, now):
                raise LockLost("the model lock is no longer ours to hand over")
            held, result = False, {"successor": history.successor_name(owner)}
            metrics.add(HAND_OVERS, MetricUnit.Count, 1)
        else:
            held = reclaim(owner, successor, now)
    logger.info("lock " + str(action), extra={"execution": owner, "held": held, **result})
    if action in ("renew", "reclaim") and not held:
        raise LockLost("the model lock was lost (lease expired and taken over); not draining further")
    return {"held": held, **result}
