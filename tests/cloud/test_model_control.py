"""ModelControl: start, poll and stop the configured backend, as the state machine calls it.

The backend is the ``FakeBackend`` plug-in (tests/cloud/fake_backend.py), built from
MODEL_BACKEND by the function itself on every invocation, as in Lambda. Each state the
function returns goes through JSON before it is passed back in, as Step Functions carries it.
"""
from __future__ import annotations

import json
import time
from datetime import datetime, timedelta, UTC
from typing import Any

import pytest

from batchsight_pipeline import lock
from batchsight_pipeline.backends.base import HOSTED, STARTING, STOPPED, TIMED_OUT
from batchsight_tools.stack import function
from tests.cloud.fake_backend import MODEL_ID
from tests.cloud.moto_stack import Stack

EXECUTION = "arn:aws:states:us-east-1:123456789012:execution:batch:run-1"


def invoke(context: Any, action: str, **event: Any) -> dict[str, Any]:
    state = function("model_control").handler({"action": action, "execution": EXECUTION, **event}, context)
    return json.loads(json.dumps(state))


def test_start_asks_for_hosting_once_per_run(stack: Stack, lambda_context: Any) -> None:
    state = invoke(lambda_context, "start")
    assert (state["backend"], state["model_id"], state["status"]) == ("fake", MODEL_ID, STARTING)
    assert state["run_token"] == EXECUTION and state["started_at"]
    assert stack.model.starts == [EXECUTION]


def test_status_follows_the_model_until_it_is_hosted(stack: Stack, lambda_context: Any) -> None:
    started = invoke(lambda_context, "start")
    assert invoke(lambda_context, "status", model=started)["status"] == STARTING
    stack.model.status = HOSTED  # the service finished hosting
    hosted = invoke(lambda_context, "status", model=started)
    assert hosted["status"] == HOSTED
    assert (hosted["started_at"], hosted["run_token"]) == (started["started_at"], EXECUTION)


def test_a_start_that_outlasts_the_timeout_is_timed_out(
        stack: Stack, lambda_context: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("START_TIMEOUT_SECONDS", "600")
    started = invoke(lambda_context, "start")
    late = {**started, "started_at": (datetime.now(UTC) - timedelta(seconds=601)).isoformat()}
    polled = invoke(lambda_context, "status", model=late)
    assert polled["status"] == TIMED_OUT and "600" in polled["reason"]


def test_stop_stops_the_model_and_may_be_repeated(stack: Stack, lambda_context: Any) -> None:
    """StopModel passes the hosted state; StopModelAfterFailure passes none, and a Retry repeats it."""
    lock.acquire(EXECUTION, time.time())
    started = invoke(lambda_context, "start")
    stack.model.status = HOSTED
    assert invoke(lambda_context, "stop", model=started)["status"] == STOPPED
    assert invoke(lambda_context, "stop")["status"] == STOPPED
    assert stack.model.status == STOPPED


def test_every_stop_attempt_renews_the_lease_past_its_first_expiry(
        stack: Stack, moto: Any, lambda_context: Any) -> None:
    """ModelBusy retries of a stop last up to about three hours, far past the lease: each attempt
    renews it, so no other execution takes the lock and starts the model being deleted."""
    from tests.cloud.moto_stack import lock_holder

    lock.acquire(EXECUTION, time.time() - 880)  # 20 s of a 900 s lease left
    invoke(lambda_context, "stop")
    owner, expires_at = lock_holder(moto, stack.lock_table) or ("", 0)
    assert owner == EXECUTION and expires_at >= time.time() + 890
    assert stack.model.stops == 1


def test_a_stop_whose_lock_was_taken_over_leaves_the_model_to_its_new_owner(
        stack: Stack, lambda_context: Any) -> None:
    lock.acquire("arn:aws:states:us-east-1:123456789012:execution:batch:other", time.time())
    stack.model.status = HOSTED
    with pytest.raises(lock.LockLost):
        invoke(lambda_context, "stop")
    assert (stack.model.status, stack.model.stops) == (HOSTED, 0)


def test_an_unknown_action_is_refused_and_leaves_the_model_alone(
        stack: Stack, lambda_context: Any) -> None:
    with pytest.raises(ValueError, match="start, status or stop"):
        invoke(lambda_context, "restart")
    assert (stack.model.starts, stack.model.stops, stack.model.status) == ([], 0, STOPPED)

