"""ModelLock function: acquire, renew or release the model lock for an execution.

The lock itself (a DynamoDB item with a lease, conditional writes) is in
``batchsight_pipeline.lock``, shared with the reaper.
"""
from __future__ import annotations

import time
from typing import Any

from aws_lambda_powertools import Logger

from batchsight_pipeline.lock import LockLost, acquire, release, renew

logger = Logger(service="batchsight-model-lock")


@logger.inject_lambda_context
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """``{"held": ...}``: after acquire or renew, whether this execution holds the lock;
    after release, whether another execution still does. A lost renew raises LockLost."""
    owner, action = str(event["execution"]), event.get("action")
    now = time.time()
    if action == "acquire":
        held = acquire(owner, now)
    elif action == "renew":
        held = renew(owner, now)
    elif action == "release":
        held = not release(owner)
    else:
        raise ValueError(f"unknown action {action!r}; expected acquire, renew or release")
    logger.info("lock " + str(action), extra={"execution": owner, "held": held})
    if action == "renew" and not held:
        raise LockLost("the model lock was lost (lease expired and taken over); not draining further")
    return {"held": held}
