"""Model routes: another model on the same stack, its settings laid over the stack's, its own lock.

Parameters live in SSM and the lock in DynamoDB, both in a moto server over HTTP; the route
parameters are written by the tool people use (`batchsight model route`), not by hand, except
where a test needs a parameter the tool would refuse to write.
"""
from __future__ import annotations

import json
import time
from typing import Any

import pytest

from batchsight_pipeline import lock, routes
from batchsight_pipeline.environment import SettingsError, required
from batchsight_pipeline.settings import Settings
from batchsight_tools.models import cli as model_cli
from batchsight_tools.stack import function
from tests.cloud.moto_stack import Moto, Stack, lock_holder, unique

A = "arn:aws:states:us-east-1:123456789012:execution:batch:a"
B = "arn:aws:states:us-east-1:123456789012:execution:batch:b"


@pytest.fixture
def routes_path(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> str:
    path = f"/batchsight/{unique('stack')}/models"
    monkeypatch.setenv("MODEL_ROUTES_PATH", path)
    routes.forget()
    return path


def add_route(moto: Moto, stack: Stack, path: str, name: str, *settings: str) -> int:
    """`batchsight model route NAME` against the moto server, as a person runs it."""
    arguments = ["route", name, "--routes-path", path, "--queue-url", stack.queue, "--endpoint-url", moto.endpoint_url]
    for setting in settings:
        arguments += ["--set", setting]
    return model_cli.main(arguments)


def put_parameter(moto: Moto, path: str, name: str, value: Any) -> None:
    moto.client("ssm").put_parameter(Name=f"{path}/{name}", Value=json.dumps(value), Type="String", Overwrite=True)
    routes.forget()


def test_a_route_lays_its_own_queue_and_settings_over_the_stacks(moto: Moto, stack: Stack, routes_path: str) -> None:
    assert add_route(moto, stack, routes_path, "pcb", "MODEL_NAME=pcb", "DETECT_TPS=3") == 0
    with routes.serving({"input": {"route": "pcb"}}) as route:
        settings = Settings.from_env()
        assert route == "pcb" and required("MODEL_NAME") == "pcb" and settings.detect_tps == 3
        assert settings.queue_url.endswith("-work-pcb") and settings.queue_url != stack.queue
        assert settings.source_bucket == stack.source_bucket, "the stack's own settings stay"
    assert Settings.from_env().queue_url == stack.queue, "outside the block, the stack's again"
    with routes.serving({"input": {"v": 1, "trigger": "schedule"}}) as route:  # no route: the stack's model
        assert route == routes.DEFAULT and Settings.from_env().queue_url == stack.queue


def test_the_route_queue_is_made_like_the_stacks_and_a_second_run_keeps_it(
        moto: Moto, stack: Stack, routes_path: str) -> None:
    sqs = moto.client("sqs")
    sqs.set_queue_attributes(QueueUrl=stack.queue, Attributes={"VisibilityTimeout": "120", "RedrivePolicy": json.dumps(
        {"deadLetterTargetArn": sqs.get_queue_attributes(QueueUrl=stack.dlq, AttributeNames=["QueueArn"])[
            "Attributes"]["QueueArn"], "maxReceiveCount": "3"})})
    assert add_route(moto, stack, routes_path, "pcb") == 0
    assert add_route(moto, stack, routes_path, "pcb", "DETECT_TPS=5") == 0
    [url] = sqs.list_queues(QueueNamePrefix=f"{routes_path.split('/')[2]}-work-")["QueueUrls"]
    made = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert made["VisibilityTimeout"] == "120" and json.loads(made["RedrivePolicy"])["maxReceiveCount"] in (3, "3")
    assert json.loads(made["Policy"])["Statement"][0]["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert routes.settings_of("pcb") == {"QUEUE_URL": url, "DETECT_TPS": "5"}


def test_each_route_holds_a_lock_of_its_own(moto: Moto, stack: Stack, routes_path: str) -> None:
    assert add_route(moto, stack, routes_path, "pcb") == 0
    now = time.time()
    assert lock.acquire(A, now)
    with routes.serving({"input": {"route": "pcb"}}):
        assert lock.acquire(B, now), "model B's start does not wait for model A's drain"
        assert not lock.acquire(A, now)
    assert lock_holder(moto, stack.lock_table) == (A, int(now) + 900)
    assert lock_holder(moto, stack.lock_table, "pcb") == (B, int(now) + 900)


@pytest.mark.parametrize(("value", "says"), [
    ("{not json", "is not JSON"),
    (["a list"], "must be a JSON object"),
    ({"QUEUE_URL": "q", "SOURCE_BUCKET": "other"}, "SOURCE_BUCKET, which belong to the whole stack"),
    ({"DETECT_TPS": "3"}, "has no QUEUE_URL"),
    ({"QUEUE_URL": "q", "MODEL_BACKEND": "lambda"}, "the stack's roles are made for"),
    ({"QUEUE_URL": "q", "SAGEMAKER_ENDPOINT_NAME": "someone-elses"}, "start with 'stack-endpoint-'"),
])
def test_a_broken_route_parameter_is_one_line_that_says_how_to_mend_it(
        moto: Moto, stack: Stack, routes_path: str, monkeypatch: pytest.MonkeyPatch, value: Any, says: str) -> None:
    monkeypatch.setenv("SAGEMAKER_ENDPOINT_NAME", "stack-endpoint")
    if isinstance(value, str):
        moto.client("ssm").put_parameter(Name=f"{routes_path}/pcb", Value=value, Type="String")
        routes.forget()
    else:
        put_parameter(moto, routes_path, "pcb", value)
    with pytest.raises(SettingsError, match=says) as raised:
        routes.settings_of("pcb")
    assert "\n" not in str(raised.value) and f"{routes_path}/pcb" in str(raised.value)


def test_an_unknown_or_malformed_route_is_refused_with_what_to_do(moto: Moto, stack: Stack, routes_path: str) -> None:
    with pytest.raises(SettingsError, match="does not exist .*`batchsight model route`"):
        routes.settings_of("nobody")
    with pytest.raises(SettingsError, match="is not a route name"):
        routes.route_of({"input": {"route": "PCB/../x"}})


@pytest.mark.parametrize(("arguments", "says"), [
    (["route", "default"], "not 'default'"),
    (["route", "Bad_Name"], "is not a route name"),
    (["route", "pcb", "--set", "SOURCE_BUCKET=x"], "belongs to the whole stack"),
    (["route", "pcb", "--set", "nonsense"], "is not NAME=VALUE"),
])
def test_the_route_command_refuses_a_wrong_argument_in_one_line(
        arguments: list[str], says: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        model_cli.main([*arguments, "--routes-path", "/batchsight/s/models", "--queue-url", "http://q"])
    assert exited.value.code == 2 and says in capsys.readouterr().err


def test_the_reaper_checks_every_route_and_a_broken_one_stops_no_other(
        moto: Moto, stack: Stack, routes_path: str, lambda_context: Any) -> None:
    assert add_route(moto, stack, routes_path, "pcb") == 0
    moto.client("ssm").put_parameter(Name=f"{routes_path}/broken", Value="{", Type="String")
    routes.forget()
    done = function("reaper").handler({}, lambda_context)
    assert done["default"]["action"] == "none" and done["pcb"]["action"] == "none"
    assert done["broken"]["action"] == "error" and "is not JSON" in done["broken"]["error"]


def test_the_routes_command_lists_each_route_with_its_waiting_images(
        moto: Moto, stack: Stack, routes_path: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert add_route(moto, stack, routes_path, "pcb", "MODEL_NAME=pcb") == 0
    with routes.serving({"input": {"route": "pcb"}}):
        moto.client("sqs").send_message(QueueUrl=Settings.from_env().queue_url, MessageBody="{}")
    capsys.readouterr()
    assert model_cli.main(["routes", "--routes-path", routes_path, "--queue-url", stack.queue,
                           "--endpoint-url", moto.endpoint_url]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].split()[:3] == ["default", "0", "none"]  # no stack alarms in this moto stack
    assert lines[2].split()[:4] == ["pcb", "1", "none", "MODEL_NAME=pcb"]


def test_the_reaper_starts_a_route_whose_images_wait_with_no_execution(
        moto: Moto, stack: Stack, routes_path: str, lambda_context: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The safety net of the routes beyond default: a gateway enqueued, then never started its batch."""
    sfn = moto.client("stepfunctions")
    wait = json.dumps({"StartAt": "Wait", "States": {"Wait": {"Type": "Wait", "Seconds": 3600, "End": True}}})
    machine = sfn.create_state_machine(name=unique("pipeline"), definition=wait,
                                       roleArn="arn:aws:iam::123456789012:role/batch")["stateMachineArn"]
    monkeypatch.setenv("STATE_MACHINE_ARN", machine)
    assert add_route(moto, stack, routes_path, "pcb") == 0
    assert function("reaper").handler({}, lambda_context)["pcb"]["started"] == "", "nothing waits: nothing started"
    running = sfn.start_execution(stateMachineArn=machine, name=unique("draining"))["executionArn"]
    with routes.serving({"input": {"route": "pcb"}}):
        moto.client("sqs").send_message(QueueUrl=Settings.from_env().queue_url, MessageBody="{}")
        assert lock.acquire(running, time.time())
    assert function("reaper").handler({}, lambda_context)["pcb"]["started"] == "", "a running execution holds it"
    with routes.serving({"input": {"route": "pcb"}}):
        assert lock.release(running)
    done = function("reaper").handler({}, lambda_context)
    assert done["pcb"]["started"].startswith("sweep-pcb-") and "started" not in done["default"]
    [started] = [e for e in sfn.list_executions(stateMachineArn=machine)["executions"] if e["name"].startswith("sweep")]
    execution_input = json.loads(sfn.describe_execution(executionArn=started["executionArn"])["input"])
    assert execution_input == {"v": 1, "trigger": "schedule", "route": "pcb"}
