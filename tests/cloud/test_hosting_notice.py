"""A start of the model is announced to every gateway's own result queue (moto server), so each
gateway sends what waits at its edge to ride this hosting (a site-wide ``batch.follow``).

ModelControl runs as the state machine calls it, with the ``FakeBackend`` plug-in: a start that
is still STARTING announces nothing; the status poll that finds the model HOSTED does, once.
"""
from __future__ import annotations

import json
from typing import Any

import pytest

from batchsight_pipeline.aws import client
from batchsight_pipeline.backends.base import HOSTED
from batchsight_pipeline.hosting_notice import announce
from tests.cloud.fake_backend import MODEL_ID, FakeBackend
from tests.cloud.moto_stack import Stack, unique
from tests.cloud.test_model_control import EXECUTION, invoke
from tests.cloud.test_result_push import prefix, pushed  # noqa: F401 - the fixture, reused

GATEWAYS = ("line1-gw", "line2-gw", "line3-gw")


@pytest.fixture
def gateway_queues(stack: Stack, prefix: str) -> dict[str, str]:  # noqa: F811 - the fixture's parameter
    """The queues three gateways create at their start, and one queue of another stack."""
    stack.sqs.create_queue(QueueName=unique("other-results-line1-gw"))
    return {name: str(stack.sqs.create_queue(QueueName=f"{prefix}-{name}")["QueueUrl"]) for name in GATEWAYS}


def notices(stack: Stack, queues: dict[str, str]) -> dict[str, list[dict[str, Any]]]:
    return {name: pushed(stack, url) for name, url in queues.items()}


def test_the_poll_that_finds_the_model_hosted_tells_every_gateway_once(
        stack: Stack, gateway_queues: dict[str, str], lambda_context: Any) -> None:
    started = invoke(lambda_context, "start")
    assert notices(stack, gateway_queues) == {name: [] for name in GATEWAYS}, "nothing while STARTING"
    stack.model.status = HOSTED
    invoke(lambda_context, "status", model=started)
    expected = {"v": 1, "kind": "hosting", "execution": EXECUTION.rsplit(":", 1)[1], "status": HOSTED,
                "model": MODEL_ID, "route": "default"}
    assert notices(stack, gateway_queues) == {name: [expected] for name in GATEWAYS}


def test_a_start_hosted_at_once_is_announced_at_the_start(
        stack: Stack, gateway_queues: dict[str, str], lambda_context: Any) -> None:
    stack.model.status = HOSTED  # the serverless detector, or an endpoint already up
    assert invoke(lambda_context, "start")["status"] == HOSTED
    assert all(len(got) == 1 for got in notices(stack, gateway_queues).values())


def test_without_queues_or_a_prefix_nothing_is_sent_and_nothing_fails(
        stack: Stack, lambda_context: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    stack.model.status = HOSTED
    monkeypatch.setenv("RESULT_QUEUE_PREFIX", unique("no-gateway-yet"))
    assert invoke(lambda_context, "start")["status"] == HOSTED
    monkeypatch.delenv("RESULT_QUEUE_PREFIX")
    assert invoke(lambda_context, "start")["status"] == HOSTED
    assert announce(client("sqs"), "", "{}") == 0


def test_a_queue_deleted_after_the_listing_costs_only_its_own_notice(
        stack: Stack, gateway_queues: dict[str, str]) -> None:
    body = json.dumps({"v": 1, "kind": "hosting", "execution": "run-2", "status": HOSTED, "model": MODEL_ID})
    sqs = client("sqs")
    real_send = sqs.send_message

    def send_after_deleting_one(**kwargs: Any) -> Any:  # the gateway line2 removed its queue meanwhile
        if kwargs["QueueUrl"] == gateway_queues["line2-gw"]:
            stack.sqs.delete_queue(QueueUrl=kwargs["QueueUrl"])
        return real_send(**kwargs)

    sqs.send_message = send_after_deleting_one
    try:
        reached = announce(sqs, gateway_queues["line1-gw"].rsplit("/", 1)[1].removesuffix("-line1-gw"), body)
    finally:
        del sqs.send_message
    assert reached == 2


def test_a_backend_billed_only_per_image_announces_nothing(
        stack: Stack, gateway_queues: dict[str, str], lambda_context: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The detector in the drain has no hosting to share: announcing each execution's start would
    only set the gateways sending their last few images, each batch starting an execution of its own."""
    monkeypatch.setattr(FakeBackend, "idle_cost", False)
    stack.model.status = HOSTED
    assert invoke(lambda_context, "start")["status"] == HOSTED
    assert notices(stack, gateway_queues) == {name: [] for name in GATEWAYS}
