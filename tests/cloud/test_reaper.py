"""The reaper: a model left hosted by an execution that is gone is stopped, its stale lock cleared.

The lock lives in a real DynamoDB table and the executions in real Step Functions (moto
server), where an execution stays RUNNING until it is stopped; the model is the FakeBackend
plug-in, whose hosting the test sets up as an earlier execution would have left it.
"""
from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest

from batchsight_pipeline import lock
from batchsight_pipeline.backends.base import FAILED, HOSTED, STARTING, STOPPED
from batchsight_tools.stack import function
from tests.cloud.moto_stack import ACCOUNT, Moto, Stack, lock_holder, unique

WAIT = json.dumps({"StartAt": "Wait", "States": {"Wait": {"Type": "Wait", "Seconds": 3600, "End": True}}})


@pytest.fixture
def executions(moto: Moto) -> Callable[[], str]:
    """Start executions of a state machine of this test's own: ``executions()`` is the ARN of a new one."""
    sfn = moto.client("stepfunctions")
    machine = sfn.create_state_machine(name=unique("batch"), definition=WAIT,
                                       roleArn=f"arn:aws:iam::{ACCOUNT}:role/batch")["stateMachineArn"]
    return lambda: sfn.start_execution(stateMachineArn=machine, name=unique("run"))["executionArn"]


def stopped(moto: Moto, execution: str) -> str:
    """The execution, stopped by hand: the way an execution ends without stopping the model."""
    moto.client("stepfunctions").stop_execution(executionArn=execution)
    return execution


def reap(context: Any) -> dict[str, Any]:
    return function("reaper").handler({}, context)["default"]


@pytest.mark.parametrize("status", [HOSTED, STARTING, FAILED])  # each may bill
def test_a_model_whose_owner_is_gone_is_stopped_and_the_lock_cleared(
        status: str, stack: Stack, moto: Moto, executions: Callable[[], str], lambda_context: Any) -> None:
    owner = stopped(moto, executions())
    lock.acquire(owner, time.time())  # the lease is still running: only the execution's status tells
    stack.model.status = status
    assert reap(lambda_context) == {"action": "stopped", "model": status, "owner": owner}
    assert (stack.model.status, stack.model.stops) == (STOPPED, 1)
    assert lock_holder(moto, stack.lock_table) is None


def test_an_owner_whose_execution_no_longer_exists_counts_as_gone(
        stack: Stack, moto: Moto, executions: Callable[[], str], lambda_context: Any) -> None:
    """Step Functions forgets executions 90 days after they end."""
    owner = executions().rsplit(":", 1)[0] + ":" + unique("forgotten")
    lock.acquire(owner, time.time())
    stack.model.status = HOSTED
    assert reap(lambda_context)["action"] == "stopped"
    assert stack.model.status == STOPPED and lock_holder(moto, stack.lock_table) is None


def test_a_hosted_model_without_any_lock_is_stopped(stack: Stack, lambda_context: Any) -> None:
    stack.model.status = HOSTED
    assert reap(lambda_context) == {"action": "stopped", "model": HOSTED, "owner": None}
    assert stack.model.status == STOPPED


def test_a_running_owner_is_left_alone(
        stack: Stack, moto: Moto, executions: Callable[[], str], lambda_context: Any) -> None:
    owner = executions()
    lock.acquire(owner, time.time())
    stack.model.status = HOSTED
    assert reap(lambda_context) == {"action": "none", "model": HOSTED, "owner": owner}
    assert (stack.model.status, stack.model.stops) == (HOSTED, 0)
    assert lock_holder(moto, stack.lock_table) == (owner, pytest.approx(time.time() + 900, abs=5))  # untouched


def test_nothing_hosted_and_a_dead_owner_only_clears_the_lock(
        stack: Stack, moto: Moto, executions: Callable[[], str], lambda_context: Any) -> None:
    owner = stopped(moto, executions())
    lock.acquire(owner, time.time())
    assert reap(lambda_context) == {"action": "cleared-lock", "model": STOPPED, "owner": owner}
    assert stack.model.stops == 0  # nothing to stop: no call to the service
    assert lock_holder(moto, stack.lock_table) is None


def test_nothing_hosted_and_no_lock_does_nothing(stack: Stack, lambda_context: Any) -> None:
    assert reap(lambda_context) == {"action": "none", "model": STOPPED, "owner": None}
    assert stack.model.stops == 0



def test_a_lock_handed_over_moments_ago_waits_for_its_successor(
        stack: Stack, moto: Moto, executions: Callable[[], str], lambda_context: Any) -> None:
    """Between the hand-over and the successor's start, its execution does not exist yet."""
    from batchsight_pipeline import history

    owner = executions()
    lock.acquire(owner, time.time())
    assert lock.hand_over(owner, history.successor_arn(owner), time.time())
    stack.model.status = HOSTED
    assert reap(lambda_context)["action"] == "none"
    assert (stack.model.status, stack.model.stops) == (HOSTED, 0)


def test_a_hand_over_whose_successor_never_started_is_reaped_after_the_grace(
        stack: Stack, moto: Moto, executions: Callable[[], str], lambda_context: Any) -> None:
    from batchsight_pipeline import history

    reaper = function("reaper")
    owner = stopped(moto, executions())
    lock.acquire(owner, time.time())
    assert lock.hand_over(owner, history.successor_arn(owner), time.time() - reaper.HANDOVER_GRACE_SECONDS - 1)
    stack.model.status = HOSTED
    assert reap(lambda_context)["action"] == "stopped"
    assert stack.model.status == STOPPED and lock_holder(moto, stack.lock_table) is None
