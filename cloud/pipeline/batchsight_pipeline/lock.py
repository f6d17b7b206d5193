"""The model lock: one execution hosts the model at a time (a DynamoDB item with a lease).

Overlapping triggers (the edge's batches, the safety-net schedule) each start an execution;
the one that takes the lock drains the queue for all of them, the others end at once. The
lease only matters if an owner dies without releasing: after it expires, the next execution
takes over. Conditional writes make acquire, renew and release safe under any interleaving.
"""
from __future__ import annotations

import os
from typing import Any

from botocore.exceptions import ClientError

from batchsight_pipeline.aws import client


class LockLost(RuntimeError):
    """Our lease expired and another execution owns the model now: leave it running for them."""

LOCK_ID = "model"


def _table() -> str:
    return os.environ["LOCK_TABLE"]


def _lease_seconds() -> int:
    return int(os.environ.get("LOCK_LEASE_SECONDS", "900"))


def _conditional(call: Any, **kwargs: Any) -> bool:
    """Run a conditional write; False when the condition did not hold."""
    try:
        call(TableName=_table(), **kwargs)
    except ClientError as exc:
        if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
            return False
        raise
    return True


def acquire(owner: str, now: float) -> bool:
    """Take a free or expired lock, or keep our own (a retried acquire is not a conflict)."""
    return _conditional(
        client("dynamodb").put_item,
        Item={"lock_id": {"S": LOCK_ID}, "owner": {"S": owner},
              "expires_at": {"N": str(int(now) + _lease_seconds())}},
        ConditionExpression="attribute_not_exists(lock_id) OR expires_at < :now OR #o = :me",
        ExpressionAttributeNames={"#o": "owner"},
        ExpressionAttributeValues={":now": {"N": str(int(now))}, ":me": {"S": owner}})


def renew(owner: str, now: float) -> bool:
    return _conditional(
        client("dynamodb").update_item, Key={"lock_id": {"S": LOCK_ID}},
        UpdateExpression="SET expires_at = :until", ConditionExpression="#o = :me",
        ExpressionAttributeNames={"#o": "owner"},
        ExpressionAttributeValues={":until": {"N": str(int(now) + _lease_seconds())}, ":me": {"S": owner}})


def release(owner: str) -> bool:
    return _conditional(
        client("dynamodb").delete_item, Key={"lock_id": {"S": LOCK_ID}},
        ConditionExpression="attribute_not_exists(lock_id) OR #o = :me",
        ExpressionAttributeNames={"#o": "owner"}, ExpressionAttributeValues={":me": {"S": owner}})
