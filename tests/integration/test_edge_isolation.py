"""Per-device isolation: the stack's EdgeDevicePolicy, rendered for a thing, against every request
the gateway's own code really makes (moto server over HTTP, a real journal file).

The gateway uploads a batch, enqueues it and starts its execution, pulls its results, reads the
pipeline's status and lists its uploads (lost images), sends an operator's answer for an image
judged in the cloud and for one judged only at the edge, and runs doctor's resource checks; each
call is recorded at botocore's parameter hook of the real clients. Every one must be allowed for
its own thing name; with another gateway's credentials every one that touches a device's data
must be refused. moto cannot judge this (tests/iam_policy.py says why), so the evaluator does.
"""
from __future__ import annotations

import hashlib
import io
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from batchsight import doctor_aws
from batchsight.cloud_link import CloudLink, source_key
from batchsight.config import Config, config_from_dict
from batchsight.doctor_checks import passed
from batchsight.feedback import FeedbackStore
from batchsight.journal import ImageState, Journal
from batchsight.lost_images import STATUS_KEY, LossCheck
from batchsight.results import ResultPuller, result_day_prefix, result_key
from batchsight_tools.localcloud.template import load_template, resolve
from tests.iam_policy import Request, allowed, request_of, substitute
from tests.support import CloudFixture

pytestmark = pytest.mark.integration
REGION, ACCOUNT = "us-east-1", "123456789012"
THING, OTHER = "line1-gw", "line2-gw"
PASS_MACHINE = json.dumps({"StartAt": "Done", "States": {"Done": {"Type": "Pass", "End": True}}})
CAPTURED = "2026-11-23T10:00:00.000Z"
# Shared by the fleet: the pipeline's status, the model packages, the queue and the state machine.
SHARED = ("s3:GetObject", f"/{STATUS_KEY}"), ("sqs:", ""), ("states:", "")


class Stack:
    """Buckets, a queue and a one-state machine of this test's own, and the policy rendered for them."""

    def __init__(self, cloud: CloudFixture) -> None:
        name = f"iso-{uuid.uuid4().hex[:10]}"
        self.s3, self.sqs, self.sfn = cloud.client("s3"), cloud.client("sqs"), cloud.client("stepfunctions")
        self.source, self.final, self.models = f"{name}-source", f"{name}-final", f"{name}-models"
        for bucket in (self.source, self.final, self.models):
            self.s3.create_bucket(Bucket=bucket)
        self.queue_url = self.sqs.create_queue(QueueName=name)["QueueUrl"]
        self.queue_arn = f"arn:aws:sqs:{REGION}:{ACCOUNT}:{name}"
        self.machine = self.sfn.create_state_machine(
            name=name, definition=PASS_MACHINE, roleArn=f"arn:aws:iam::{ACCOUNT}:role/sfn")["stateMachineArn"]
        self.calls: list[Request] = []

    def policy(self, thing: str) -> dict[str, Any]:
        """EdgeDevicePolicy as CloudFormation renders it here, then as IAM sees it for ``thing``."""
        physical = {"SourceBucket": f"arn:aws:s3:::{self.source}", "FinalBucket": f"arn:aws:s3:::{self.final}",
                    "ModelBucket": f"arn:aws:s3:::{self.models}", "ImageQueue": self.queue_arn,
                    "BatchStateMachine": self.machine}
        document = load_template()["Resources"]["EdgeDevicePolicy"]["Properties"]["PolicyDocument"]
        rendered = resolve(document, lambda logical, _attribute: physical[logical])
        assert "${credentials-iot:ThingName}" in json.dumps(rendered), "CloudFormation leaves the variable to IAM"
        return substitute(rendered, {"credentials-iot:ThingName": thing})

    def record(self, clients: dict[str, Any]) -> None:
        """Record every call of the gateway's clients as the IAM request it is."""
        def before(params: dict[str, Any], model: Any, **_: Any) -> None:
            service = model.service_model.endpoint_prefix.replace("states", "sfn")
            self.calls.append(request_of(service, model.name, params, region=REGION, account=ACCOUNT))
        for client in clients.values():
            client.meta.events.register("before-parameter-build", before)


@pytest.fixture
def stack(local_cloud_session: CloudFixture) -> Stack:
    return Stack(local_cloud_session)


@pytest.fixture
def gateway(tmp_path: Path, stack: Stack, local_cloud_session: CloudFixture) -> Iterator[tuple[Config, Journal]]:
    config = config_from_dict({"site": "plant1", "line": "line1", "device": THING,
                               "drop_folder": str(tmp_path / "drop"), "work_folder": str(tmp_path / "work"),
                               "aws": {"source_bucket": stack.source, "final_bucket": stack.final,
                                       "queue_url": stack.queue_url, "state_machine_arn": stack.machine}})
    journal = Journal(config.journal_path)
    yield config, journal
    journal.close()


def _spool(config: Config, journal: Journal, count: int) -> list[str]:
    spool = config.work_folder / "spool"
    spool.mkdir(parents=True, exist_ok=True)
    ids = []
    for n in range(count):
        buffer = io.BytesIO()
        Image.new("L", (64, 64), 40 * n).save(buffer, "JPEG")
        data = buffer.getvalue()
        image_id = hashlib.sha256(data).hexdigest()
        (spool / f"{image_id}.jpg").write_bytes(data)
        journal.add({"image_id": image_id, "file_name": f"p{n}.jpg", "path": str(spool / f"{image_id}.jpg"),
                     "ext": "jpg", "size": len(data), "width": 64, "height": 64, "captured_at": CAPTURED})
        ids.append(image_id)
    return ids


def _gateway_day(config: Config, journal: Journal, stack: Stack, clients: dict[str, Any]) -> None:
    """Everything the gateway calls AWS for, through its own classes."""
    ids = _spool(config, journal, 2)
    journal.cut_batch("b1", max_images=1)
    cloud_judged = journal.batch_images("b1")[0].image_id
    edge_judged = next(i for i in ids if i != cloud_judged)
    CloudLink(config, journal, s3=clients["s3"], sqs=clients["sqs"], sfn=clients["stepfunctions"]).submit("b1")
    image = journal.get(cloud_judged)
    assert image is not None
    stack.s3.put_object(Bucket=stack.final, Key=result_key(config, image), Body=json.dumps({  # the pipeline's
        "v": 1, "image_id": cloud_judged, "result": {"IsAnomalous": True, "Confidence": 0.9},
        "image": {"key": f"{result_day_prefix(config, CAPTURED)}{cloud_judged}.jpg"}}).encode())
    stack.s3.put_object(Bucket=stack.final, Key=STATUS_KEY, Body=b'{"v": 1, "backpressure": false, "backlog": 0}')
    assert ResultPuller(config, journal, s3=clients["s3"]).poll() == ["b1"]
    losses = LossCheck(config, s3=clients["s3"])
    assert losses.status() is not None and losses.lost([image]) == []
    journal.advance([edge_judged], ImageState.RESULT_STORED, is_anomalous=1, confidence=0.8,
                    result_json=json.dumps({"v": 1, "image_id": edge_judged,
                                            "result": {"IsAnomalous": True, "Confidence": 0.8}}))
    feedback = FeedbackStore(config, journal, s3=clients["s3"])
    for image_id in (cloud_judged, edge_judged):
        assert feedback.handle(json.dumps({"v": 1, "image_id": image_id, "verdict": "confirmed"}).encode())["ok"]
    assert feedback.upload_pending() == 2
    feedback.close()
    resources = doctor_aws.Resources(config, clients, doctor_aws.Link(), clock_ok=True)
    checks = doctor_aws.resource_checks(resources, passed("device id", THING))
    assert all(check.ok for check in checks), checks


def _shared(request: Request) -> bool:
    return any(request.action.startswith(action) and request.resource.endswith(tail) for action, tail in SHARED)


def test_the_gateway_may_make_its_own_calls_and_another_gateway_none_of_them(
        gateway: tuple[Config, Journal], stack: Stack, local_cloud_session: CloudFixture) -> None:
    config, journal = gateway
    clients = {name: local_cloud_session.client(name) for name in ("s3", "sqs", "stepfunctions")}
    stack.record(clients)
    _gateway_day(config, journal, stack, clients)
    assert {c.action for c in stack.calls} >= {"s3:PutObject", "s3:GetObject", "s3:ListBucket", "sqs:SendMessage",
                                              "states:StartExecution"}, stack.calls
    own, others = stack.policy(THING), stack.policy(OTHER)
    assert [c for c in stack.calls if not allowed(own, c)] == [], "the gateway's own calls must be allowed"
    private = [c for c in stack.calls if not _shared(c)]
    assert len(private) >= 8 and [c for c in private if allowed(others, c)] == [], \
        "another thing's credentials must reach none of this gateway's objects"


def test_a_gateway_can_neither_list_whole_buckets_nor_rewrite_verdicts(stack: Stack, tmp_path: Path) -> None:
    own = stack.policy(THING)
    config = config_from_dict({"site": "plant1", "line": "line1", "device": THING,
                               "drop_folder": str(tmp_path / "drop"), "work_folder": str(tmp_path / "work"),
                               "aws": {"source_bucket": stack.source, "final_bucket": stack.final,
                                       "queue_url": stack.queue_url, "state_machine_arn": stack.machine}})
    journal = Journal(config.journal_path)
    image = journal.get(_spool(config, journal, 1)[0])
    journal.close()
    assert image is not None
    source, final = f"arn:aws:s3:::{stack.source}", f"arn:aws:s3:::{stack.final}"
    assert allowed(own, Request("s3:PutObject", f"{source}/{source_key(config, image)}"))
    refused = [
        Request("s3:ListBucket", source), Request("s3:ListBucket", final),
        Request("s3:ListBucket", final, {"s3:prefix": ""}), Request("s3:ListBucket", final, {"s3:prefix": "results/"}),
        Request("s3:ListBucket", final, {"s3:prefix": f"results/plant1/line1/{OTHER}/"}),
        Request("s3:PutObject", f"{final}/{result_key(config, image)}"),  # its own verdict
        Request("s3:PutObject", f"{final}/{STATUS_KEY}"),
        Request("s3:GetObject", f"{source}/{source_key(config, image)}"),
        Request("s3:DeleteObject", f"{source}/{source_key(config, image)}"),
        Request("sqs:ReceiveMessage", stack.queue_arn), Request("states:StopExecution", stack.machine),
    ]
    assert [r for r in refused if allowed(own, r)] == []
