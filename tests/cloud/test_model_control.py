"""ModelControl: start, poll and stop the configured backend, as the state machine calls it.

The backend is the ``FakeBackend`` plug-in (tests/cloud/fake_backend.py), built from
MODEL_BACKEND by the function itself on every invocation, as in Lambda. Each state the
function returns goes through JSON before it is passed back in, as Step Functions carries it.
"""
from __future__ import annotations

import json
from datetime import datetime, timedelta, UTC
from typing import Any

import pytest

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
    started = invoke(lambda_context, "start")
    stack.model.status = HOSTED
    assert invoke(lambda_context, "stop", model=started)["status"] == STOPPED
    assert invoke(lambda_context, "stop")["status"] == STOPPED
    assert stack.model.status == STOPPED


def test_an_unknown_action_is_refused_and_leaves_the_model_alone(
        stack: Stack, lambda_context: Any) -> None:
    with pytest.raises(ValueError, match="start, status or stop"):
        invoke(lambda_context, "restart")
    assert (stack.model.starts, stack.model.stops, stack.model.status) == ([], 0, STOPPED)

