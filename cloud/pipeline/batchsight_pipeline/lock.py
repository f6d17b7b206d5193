"""The model lock: one execution hosts the model at a time (a DynamoDB item with a lease).

Overlapping triggers (the edge's batches, the safety-net schedule) each start an execution;
the one that takes the lock drains the queue for all of them, the others end at once. The
lease only matters if an owner dies without releasing: after it expires, the next execution
takes over. Conditional writes make acquire, renew and release safe under any interleaving.

Hand-over (history.py): an owner near Step Functions' history quota passes the lock to the
successor it is about to start, in one conditional write (owner = us, or already the successor,
so a retried hand-over is no conflict), and writes when (``handed_over_at``), so the reaper
leaves the model alone while the successor is still being started. The successor confirms it
with ``renew``. If the successor cannot be started, ``reclaim`` takes the lock back the same way.

One lock per model route (routes.py): the item's key is the route's (``lock_key``), so each
model is hosted under its own lock and one model's drain never holds another's start.

Environment: LOCK_TABLE (the table, required), LOCK_LEASE_SECONDS (default 900), MODEL_ROUTE
(the route being served, laid over the environment by ``routes.serving``; ``default`` when unset).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from batchsight_pipeline.aws import client
from batchsight_pipeline.environment import number, required
from batchsight_pipeline.routes import current, lock_id

__all__ = ["Holder", "LockLost", "acquire", "hand_over", "holder", "lock_key", "reclaim", "release", "renew"]

_OWNER = {"#o": "owner"}  # OWNER is a DynamoDB reserved word: expressions name it through #o


class LockLost(RuntimeError):
    """Our lease expired and another execution owns the model now: leave it running for them.

    The state machine catches this error by its class name, so the name is the contract.
    """


def acquire(owner: str, now: float) -> bool:
    """Take a free or expired lock, or keep our own (a retried acquire is not a conflict)."""
    return _conditional(
        client("dynamodb").put_item,
        Item={"lock_id": {"S": lock_key()}, "owner": {"S": owner}, "expires_at": {"N": _lease_end(now)}},
        ConditionExpression="attribute_not_exists(lock_id) OR expires_at < :now OR #o = :me",
        ExpressionAttributeNames=_OWNER,
        ExpressionAttributeValues={":now": {"N": str(int(now))}, ":me": {"S": owner}})


def renew(owner: str, now: float) -> bool:
    """Extend our lease; False when the lock is no longer ours (it expired and was taken over)."""
    return _conditional(
        client("dynamodb").update_item, Key={"lock_id": {"S": lock_key()}},
        UpdateExpression="SET expires_at = :until", ConditionExpression="#o = :me",
        ExpressionAttributeNames=_OWNER,
        ExpressionAttributeValues={":until": {"N": _lease_end(now)}, ":me": {"S": owner}})


def release(owner: str) -> bool:
    """Give the lock up; True when it is free now, False when another execution holds it."""
    return _conditional(
        client("dynamodb").delete_item, Key={"lock_id": {"S": lock_key()}},
        ConditionExpression="attribute_not_exists(lock_id) OR #o = :me",
        ExpressionAttributeNames=_OWNER, ExpressionAttributeValues={":me": {"S": owner}})


def hand_over(owner: str, successor: str, now: float) -> bool:
    """Pass our lock to ``successor`` with a fresh lease; False when it is neither ours nor theirs."""
    return _conditional(
        client("dynamodb").update_item, Key={"lock_id": {"S": lock_key()}},
        UpdateExpression="SET #o = :next, expires_at = :until, handed_over_at = :now, handed_over_by = :me",
        ConditionExpression="#o = :me OR #o = :next", ExpressionAttributeNames=_OWNER,
        ExpressionAttributeValues={":next": {"S": successor}, ":me": {"S": owner},
                                   ":until": {"N": _lease_end(now)}, ":now": {"N": str(int(now))}})


def reclaim(owner: str, successor: str, now: float) -> bool:
    """Take back a lock we handed to a successor that could not be started (or keep our own)."""
    return _conditional(
        client("dynamodb").update_item, Key={"lock_id": {"S": lock_key()}},
        UpdateExpression="SET #o = :me, expires_at = :until REMOVE handed_over_at, handed_over_by",
        ConditionExpression="#o = :me OR #o = :next", ExpressionAttributeNames=_OWNER,
        ExpressionAttributeValues={":next": {"S": successor}, ":me": {"S": owner},
                                   ":until": {"N": _lease_end(now)}})


@dataclass(frozen=True)
class Holder:
    """The lock item as it stands: who holds it, until when, and when it was handed over (0: never)."""

    owner: str
    expires_at: int
    handed_over_at: int = 0


def holder(table: str | None = None) -> Holder | None:
    """The lock's holder (expired or not), or None when nobody holds it."""
    item = client("dynamodb").get_item(TableName=table or required("LOCK_TABLE"),
                                       Key={"lock_id": {"S": lock_key()}}, ConsistentRead=True).get("Item")
    if not item:
        return None
    return Holder(item["owner"]["S"], int(item.get("expires_at", {"N": "0"})["N"]),
                  int(item.get("handed_over_at", {"N": "0"})["N"]))


def lock_key() -> str:
    """The lock item's key for the route being served."""
    return lock_id(current())


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
