"""The model lock: one execution hosts the model at a time (a DynamoDB item with a lease).

Overlapping triggers (the edge's batches, the safety-net schedule) each start an execution;
the one that takes the lock drains the queue for all of them, the others end at once. The
lease only matters if an owner dies without releasing: after it expires, the next execution
takes over. Conditional writes make acquire, renew and release safe under any interleaving.

Environment: LOCK_TABLE (the table, required), LOCK_LEASE_SECONDS (default 900).
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from botocore.exceptions import ClientError

from batchsight_pipeline.aws import client
from batchsight_pipeline.environment import number, required

__all__ = ["LOCK_ID", "LockLost", "acquire", "release", "renew"]

LOCK_ID = "model"
_OWNER = {"#o": "owner"}  # OWNER is a DynamoDB reserved word: expressions name it through #o


class LockLost(RuntimeError):
    """Our lease expired and another execution owns the model now: leave it running for them.

    The state machine catches this error by its class name, so the name is the contract.
    """


def acquire(owner: str, now: float) -> bool:
    """Take a free or expired lock, or keep our own (a retried acquire is not a conflict)."""
    return _conditional(
        client("dynamodb").put_item,
        Item={"lock_id": {"S": LOCK_ID}, "owner": {"S": owner}, "expires_at": {"N": _lease_end(now)}},
        ConditionExpression="attribute_not_exists(lock_id) OR expires_at < :now OR #o = :me",
        ExpressionAttributeNames=_OWNER,
        ExpressionAttributeValues={":now": {"N": str(int(now))}, ":me": {"S": owner}})


def renew(owner: str, now: float) -> bool:
    """Extend our lease; False when the lock is no longer ours (it expired and was taken over)."""
    return _conditional(
        client("dynamodb").update_item, Key={"lock_id": {"S": LOCK_ID}},
        UpdateExpression="SET expires_at = :until", ConditionExpression="#o = :me",
        ExpressionAttributeNames=_OWNER,
        ExpressionAttributeValues={":until": {"N": _lease_end(now)}, ":me": {"S": owner}})


def release(owner: str) -> bool:
    """Give the lock up; True when it is free now, False when another execution holds it."""
    return _conditional(
        client("dynamodb").delete_item, Key={"lock_id": {"S": LOCK_ID}},
        ConditionExpression="attribute_not_exists(lock_id) OR #o = :me",
        ExpressionAttributeNames=_OWNER, ExpressionAttributeValues={":me": {"S": owner}})


def _lease_end(now: float) -> str:
    """When a lease taken or renewed ``now`` runs out (epoch seconds, as a DynamoDB number)."""
    return str(int(now) + int(number("LOCK_LEASE_SECONDS", 900, minimum=1)))


def _conditional(call: Callable[..., Any], **kwargs: Any) -> bool:
    """Run a conditional write; False when the condition did not hold."""
    try:
        call(TableName=required("LOCK_TABLE"), **kwargs)
    except ClientError as exc:
        if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
            return False
        raise
    return True
