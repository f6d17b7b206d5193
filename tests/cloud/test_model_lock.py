"""The model lock on a real DynamoDB table (moto server): one owner at a time, a lease that runs out.

``batchsight_pipeline.lock`` takes the clock as an argument, so the lease's edges are tested at
exact seconds; the ModelLock function, which reads the real clock, is tested with leases that
have run out written into the table as a dead owner would leave them.
"""
from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import jsonschema
import pytest

from batchsight_pipeline import lock
from batchsight_tools.stack import function
from tests.cloud.moto_stack import ACCOUNT, Moto, lock_holder
from tests.support import load_schema

LEASE = 900  # LOCK_LEASE_SECONDS of the lock_table fixture
EXECUTIONS = "arn:aws:states:us-east-1:123456789012:execution:batch"
A, B = f"{EXECUTIONS}:a", f"{EXECUTIONS}:b"  # two executions of the state machine


# --- the lock --------------------------------------------------------------------------------------

def test_a_free_lock_is_taken_and_a_second_owner_is_refused(moto: Moto, lock_table: str) -> None:
    assert lock.acquire(A, 1000)
    assert not lock.acquire(B, 1001)
    assert lock_holder(moto, lock_table) == (A, 1000 + LEASE)


def test_acquiring_again_keeps_our_own_lock_and_extends_it(moto: Moto, lock_table: str) -> None:
    """A retried AcquireLock task is not a conflict with itself."""
    assert lock.acquire(A, 1000)
    assert lock.acquire(A, 1100)
    assert lock_holder(moto, lock_table) == (A, 1100 + LEASE)


def test_an_expired_lease_is_taken_over_but_not_a_second_earlier(moto: Moto, lock_table: str) -> None:
    assert lock.acquire(A, 1000)
    assert not lock.acquire(B, 1000 + LEASE)  # the lease holds through its last second
    assert lock.acquire(B, 1000 + LEASE + 1)
    assert lock_holder(moto, lock_table) == (B, 1000 + 2 * LEASE + 1)


def test_a_renewed_lease_keeps_the_lock_past_its_first_expiry(moto: Moto, lock_table: str) -> None:
    assert lock.acquire(A, 1000)
    assert lock.renew(A, 1800)
    assert not lock.acquire(B, 1000 + LEASE + 1)
    assert lock_holder(moto, lock_table) == (A, 1800 + LEASE)


def test_after_a_takeover_the_old_owner_can_neither_renew_nor_release(moto: Moto, lock_table: str) -> None:
    assert lock.acquire(A, 1000)
    assert lock.acquire(B, 1000 + LEASE + 1)
    assert not lock.renew(A, 2000)
    assert not lock.release(A)
    assert lock_holder(moto, lock_table) == (B, 1000 + 2 * LEASE + 1)


def test_renew_without_any_lock_fails(lock_table: str) -> None:
    assert not lock.renew(A, 1000)


def test_release_frees_the_lock_and_is_idempotent(moto: Moto, lock_table: str) -> None:
    assert lock.acquire(A, 1000)
    assert lock.release(A)
    assert lock_holder(moto, lock_table) is None
    assert lock.release(A)  # ReleaseLock retried: still free, still fine
    assert lock.acquire(B, 1001)


def test_the_lease_comes_from_the_environment(moto: Moto, lock_table: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOCK_LEASE_SECONDS", "120")
    assert lock.acquire(A, 1000)
    assert lock_holder(moto, lock_table) == (A, 1120)


# --- the ModelLock function ------------------------------------------------------------------------

def invoke(action: str, execution: str, context: Any) -> dict[str, Any]:
    return function("model_lock").handler({"action": action, "execution": execution}, context)


def lease_ran_out(moto: Moto, table: str, owner: str) -> None:
    """The lock as an owner that died leaves it: held, its lease over."""
    moto.client("dynamodb").put_item(TableName=table, Item={
        "lock_id": {"S": lock.lock_key()}, "owner": {"S": owner}, "expires_at": {"N": str(int(time.time()) - 5)}})


def test_one_execution_holds_the_lock_the_next_ends_at_once(lock_table: str, lambda_context: Any) -> None:
    assert invoke("acquire", A, lambda_context) == {"held": True}
    assert invoke("acquire", B, lambda_context) == {"held": False}
    assert invoke("renew", A, lambda_context) == {"held": True}


def test_the_lock_of_a_dead_owner_is_taken_over_and_its_renew_raises_lock_lost(
        moto: Moto, lock_table: str, lambda_context: Any) -> None:
    lease_ran_out(moto, lock_table, A)
    assert invoke("acquire", B, lambda_context) == {"held": True}
    with pytest.raises(lock.LockLost) as raised:
        invoke("renew", A, lambda_context)
    assert type(raised.value).__name__ == "LockLost"  # the state machine's Catch matches this name
    assert lock_holder(moto, lock_table) == (B, pytest.approx(time.time() + LEASE, abs=5))


def test_release_reports_whether_someone_still_holds_the_lock(
        moto: Moto, lock_table: str, lambda_context: Any) -> None:
    assert invoke("acquire", A, lambda_context) == {"held": True}
    assert invoke("release", B, lambda_context) == {"held": True}  # not ours to release: A keeps it
    assert invoke("release", A, lambda_context) == {"held": False}
    assert lock_holder(moto, lock_table) is None


def test_an_unknown_action_is_refused(lock_table: str, lambda_context: Any) -> None:
    with pytest.raises(ValueError, match="acquire, renew, release, takeover, handover, continue"):
        invoke("steal", A, lambda_context)


# --- the hand-over (continue-as-new) ---------------------------------------------------------------

def test_a_hand_over_passes_the_lock_to_the_successor_with_a_fresh_lease(moto: Moto, lock_table: str) -> None:
    assert lock.acquire(A, 1000)
    assert lock.hand_over(A, B, 1500)
    assert lock_holder(moto, lock_table) == (B, 1500 + LEASE)
    assert lock.hand_over(A, B, 1501), "a retried hand-over is no conflict"
    assert not lock.renew(A, 1502) and lock.renew(B, 1502), "the successor confirms; the predecessor is out"
    assert lock.holder(lock_table) == lock.Holder(B, 1502 + LEASE, 1501)


def test_no_one_hands_over_a_lock_that_is_not_theirs(moto: Moto, lock_table: str) -> None:
    assert lock.acquire(B, 1000)
    assert not lock.hand_over(A, f"{EXECUTIONS}:c", 1001)
    assert not lock.hand_over(A, f"{EXECUTIONS}:c", 1001)
    assert lock_holder(moto, lock_table) == (B, 1000 + LEASE)


def test_a_successor_that_was_never_started_gives_the_lock_back(moto: Moto, lock_table: str) -> None:
    assert lock.acquire(A, 1000)
    assert lock.hand_over(A, B, 1500)
    assert lock.reclaim(A, B, 1600)
    assert lock.holder(lock_table) == lock.Holder(A, 1600 + LEASE, 0)
    assert lock.reclaim(A, B, 1601), "a retried reclaim keeps our own lock"
    assert lock.acquire(f"{EXECUTIONS}:c", 1000 + 2 * LEASE + 1000)  # a later takeover ...
    assert not lock.reclaim(A, B, 3000)  # ... is not undone


MODEL = {"backend": "fake", "model_id": "m", "status": "HOSTED", "started_at": "2026-12-05T00:00:00Z",
         "run_token": A, "reason": "", "version": "1"}
WORK = {"has_work": True, "visible": 40, "in_flight": 0, "poll_seconds": 30, "workers": [0, 1],
        "tally": {"processed": 900}, "load": {}, "events": 12000, "stalled": 0, "hand_over": True, "successor": "x"}


@pytest.fixture
def machine(moto: Moto) -> Iterator[str]:
    """A state machine named as A's and B's (``batch``), whose executions wait: the successor's home."""
    sfn = moto.client("stepfunctions")
    wait = json.dumps({"StartAt": "Wait", "States": {"Wait": {"Type": "Wait", "Seconds": 3600, "End": True}}})
    arn = sfn.create_state_machine(name="batch", definition=wait, roleArn=f"arn:aws:iam::{ACCOUNT}:role/batch")
    yield arn["stateMachineArn"]
    for listed in sfn.list_executions(stateMachineArn=arn["stateMachineArn"], statusFilter="RUNNING")["executions"]:
        sfn.stop_execution(executionArn=listed["executionArn"])
    sfn.delete_state_machine(stateMachineArn=arn["stateMachineArn"])


def hand_over(execution: str, context: Any) -> dict[str, Any]:
    return function("model_lock").handler({"action": "handover", "execution": execution, "model": MODEL,
                                           "work": WORK}, context)


def test_a_hand_over_passes_the_lock_and_starts_the_successor_with_the_model(
        moto: Moto, lock_table: str, machine: str, lambda_context: Any) -> None:
    from batchsight_pipeline import history

    assert invoke("acquire", A, lambda_context) == {"held": True}
    assert hand_over(A, lambda_context) == {"handed_over": True, "successor": history.successor_name(A)}
    assert hand_over(A, lambda_context)["handed_over"], "a retried hand-over finds its successor started"
    successor = history.successor_arn(A)
    started = moto.client("stepfunctions").describe_execution(executionArn=successor)
    jsonschema.validate(json.loads(started["input"]), load_schema("execution_input"))
    handed = json.loads(started["input"])["handover"]
    assert (handed["from"], handed["model"]) == (A, MODEL)
    assert handed["work"]["events"] == 0 and handed["work"]["hand_over"] is False  # a fresh history
    assert handed["work"]["tally"] == {"processed": 900}  # the batch's totals go on
    assert invoke("takeover", successor, lambda_context) == {"held": True}
    assert invoke("takeover", B, lambda_context) == {"held": False}, "a stranger never takes it over"
    with pytest.raises(lock.LockLost):
        invoke("renew", A, lambda_context)
    with pytest.raises(lock.LockLost):
        hand_over(B, lambda_context)


def test_a_successor_that_cannot_start_leaves_the_lock_with_the_execution(
        moto: Moto, lock_table: str, lambda_context: Any) -> None:
    """No state machine ``batch`` exists here: StartExecution fails, and the lock comes back."""
    assert invoke("acquire", A, lambda_context) == {"held": True}
    assert hand_over(A, lambda_context) == {"handed_over": False, "successor": ""}
    assert invoke("renew", A, lambda_context) == {"held": True}


def test_after_the_release_a_plain_successor_is_started_to_take_the_lock_itself(
        moto: Moto, lock_table: str, machine: str, lambda_context: Any) -> None:
    from batchsight_pipeline import history

    answer = invoke("continue", A, lambda_context)
    assert answer == {"handed_over": True, "successor": history.successor_name(A)}
    started = moto.client("stepfunctions").describe_execution(executionArn=history.successor_arn(A))
    assert json.loads(started["input"]) == {"v": 1, "trigger": "continue", "route": "default"}
    jsonschema.validate(json.loads(started["input"]), load_schema("execution_input"))
    assert lock_holder(moto, lock_table) is None
