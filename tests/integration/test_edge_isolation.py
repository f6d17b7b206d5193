"""Per-device isolation: the stack's EdgeDevicePolicy, rendered for a thing, against every request
the gateway's own code really makes (moto server over HTTP, a real journal file).

The gateway uploads a batch, enqueues it and starts its execution, lists for one result and takes
another from its own result queue (created at start, as push does), reads the
pipeline's status and lists its uploads (lost images), sends an operator's answer for an image
judged in the cloud and for one judged only at the edge, and runs doctor's resource checks; each
call is recorded at botocore's parameter hook of the real clients. Every one must be allowed for
its own thing name; with another gateway's credentials every one that touches a device's data
must be refused. moto cannot judge this (tests/iam_policy.py says why), so the evaluator does; a
moto server that enforces IAM still checks the part it can, the object keys, with the policy
rendered for the thing by hand.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from PIL import Image

from batchsight import doctor_aws
from batchsight.cloud_link import CloudLink, source_key
from batchsight.config import Config, config_from_dict
from batchsight.doctor_checks import passed
from batchsight.feedback import FeedbackStore
from batchsight.journal import ImageRecord, ImageState, Journal
from batchsight.lost_images import STATUS_KEY, LossCheck
from batchsight.push_receiver import ResultReceiver
from batchsight.results import PushState, ResultPuller, result_day_prefix, result_key
from batchsight_tools.localcloud.stack import free_port
from batchsight_tools.localcloud.template import load_template, resolve
from tests.iam_policy import Request, allowed, request_of, substitute
from tests.support import CloudFixture, wait_for

pytestmark = pytest.mark.integration
REGION, ACCOUNT = "us-east-1", "123456789012"
THING, OTHER = "line1-gw", "line2-gw"
PASS_MACHINE = json.dumps({"StartAt": "Done", "States": {"Done": {"Type": "Pass", "End": True}}})
CAPTURED = "2026-11-23T10:00:00.000Z"
SETUP_CALLS = 5  # unauthenticated calls moto takes before it enforces IAM: two buckets, a user, its key and policy
# Shared by the fleet: the pipeline's status, the image queue and the state machine.
SHARED = ("s3:GetObject", f"/{STATUS_KEY}"), ("sqs:", "-images"), ("states:", "")


def render_policy(thing: str, *, source: str, final: str, models: str, queue_arn: str, machine: str) -> dict[str, Any]:
    """EdgeDevicePolicy as CloudFormation renders it for these resources, then as IAM sees it for ``thing``."""
    physical = {"SourceBucket": f"arn:aws:s3:::{source}", "FinalBucket": f"arn:aws:s3:::{final}",
                "ModelBucket": f"arn:aws:s3:::{models}", "ImageQueue": queue_arn, "BatchStateMachine": machine,
                "AWS::Partition": "aws", "AWS::Region": REGION, "AWS::AccountId": ACCOUNT,
                "AWS::StackName": source.removesuffix("-source")}
    document = load_template()["Resources"]["EdgeDevicePolicy"]["Properties"]["PolicyDocument"]
    rendered = resolve(document, lambda logical, _attribute: physical[logical])
    assert "${credentials-iot:ThingName}" in json.dumps(rendered), "CloudFormation leaves the variable to IAM"
    return substitute(rendered, {"credentials-iot:ThingName": thing})


class Stack:
    """Buckets, a queue and a one-state machine of this test's own, and the policy rendered for them."""

    def __init__(self, cloud: CloudFixture) -> None:
        name = f"iso-{uuid.uuid4().hex[:10]}"
        self.s3, self.sqs, self.sfn = cloud.client("s3"), cloud.client("sqs"), cloud.client("stepfunctions")
        self.source, self.final, self.models = f"{name}-source", f"{name}-final", f"{name}-models"
        for bucket in (self.source, self.final, self.models):
            self.s3.create_bucket(Bucket=bucket)
        self.queue_url = self.sqs.create_queue(QueueName=f"{name}-images")["QueueUrl"]
        self.queue_arn = f"arn:aws:sqs:{REGION}:{ACCOUNT}:{name}-images"
        self.result_queue_prefix = f"{name}-results"  # the stack's output ResultQueuePrefix
        self.machine = self.sfn.create_state_machine(
            name=name, definition=PASS_MACHINE, roleArn=f"arn:aws:iam::{ACCOUNT}:role/sfn")["stateMachineArn"]
        self.calls: list[Request] = []

    def policy(self, thing: str) -> dict[str, Any]:
        return render_policy(thing, source=self.source, final=self.final, models=self.models,
                             queue_arn=self.queue_arn, machine=self.machine)

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
def gateway(request: pytest.FixtureRequest, tmp_path: Path, stack: Stack) -> Iterator[tuple[Config, Journal]]:
    """A gateway's configuration and journal; ``final-bucket`` as the param: the stack's output
    SourceBucketName as ImageUpload=final-bucket gives it (the final bucket)."""
    upload_to = stack.final if getattr(request, "param", "source-bucket") == "final-bucket" else stack.source
    config = config_from_dict({"site": "plant1", "line": "line1", "device": THING,
                               "drop_folder": str(tmp_path / "drop"), "work_folder": str(tmp_path / "work"),
                               "aws": {"source_bucket": upload_to, "final_bucket": stack.final,
                                       "queue_url": stack.queue_url, "state_machine_arn": stack.machine,
                                       "result_queue_prefix": stack.result_queue_prefix}})
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
    ids = _spool(config, journal, 3)
    journal.cut_batch("b1", max_images=2)
    cloud_judged, pushed = (i.image_id for i in journal.batch_images("b1"))
    edge_judged = next(i for i in ids if i not in (cloud_judged, pushed))
    CloudLink(config, journal, s3=clients["s3"], sqs=clients["sqs"], sfn=clients["stepfunctions"]).submit("b1")
    image = journal.get(cloud_judged)
    assert image is not None
    stack.s3.put_object(Bucket=stack.final, Key=result_key(config, image), Body=json.dumps(_document(config, image)))
    stack.s3.put_object(Bucket=stack.final, Key=STATUS_KEY, Body=b'{"v": 1, "backpressure": false, "backlog": 0}')
    push = PushState()
    puller = ResultPuller(config, journal, s3=clients["s3"], push=push)
    assert puller.poll() == ["b1"]  # push not up yet: listed
    _receive_pushed(config, journal, stack, puller, push, clients["sqs"], pushed)
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


def _document(config: Config, image: ImageRecord) -> dict[str, Any]:
    """The result document the pipeline writes for ``image``."""
    return {"v": 1, "image_id": image.image_id, "result": {"IsAnomalous": True, "Confidence": 0.9},
            "image": {"key": f"{result_day_prefix(config, image.captured_at)}{image.image_id}.jpg"}}


def _receive_pushed(config: Config, journal: Journal, stack: Stack, puller: ResultPuller, push: PushState,
                    sqs: Any, image_id: str) -> None:
    """The gateway's receiver opens its own queue; the drain pushes one result into it, taken and deleted."""
    receiver = ResultReceiver(config, puller, push, sqs=sqs, on_hosted=lambda _batch: None)
    receiver.start()
    try:
        wait_for(lambda: push.since() is not None, 30, "the gateway's own result queue")
        image = journal.get(image_id)
        assert image is not None
        key = result_key(config, image)
        url = stack.sqs.get_queue_url(QueueName=config.results.queue_name(config.aws, THING))["QueueUrl"]
        stack.sqs.send_message(QueueUrl=url, MessageBody=json.dumps(  # as the drain pushes it
            {"v": 1, "image_id": image_id, "key": key, "document": _document(config, image)}))
        wait_for(lambda: (journal.get(image_id) or image).state == ImageState.RESULT_STORED, 60, "the pushed result")
        wait_for(lambda: stack.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
                 ["ApproximateNumberOfMessagesNotVisible"] == "0", 30, "the delete of the pushed message")
    finally:
        receiver.stop()


def _shared(request: Request) -> bool:
    return any(request.action.startswith(action) and request.resource.endswith(tail) for action, tail in SHARED)


@pytest.mark.parametrize("gateway", ["source-bucket", "final-bucket"], indirect=True)
def test_the_gateway_may_make_its_own_calls_and_another_gateway_none_of_them(
        gateway: tuple[Config, Journal], stack: Stack, local_cloud_session: CloudFixture) -> None:
    config, journal = gateway
    clients = {name: local_cloud_session.client(name) for name in ("s3", "sqs", "stepfunctions")}
    stack.record(clients)
    _gateway_day(config, journal, stack, clients)
    assert {c.action for c in stack.calls} >= {"s3:PutObject", "s3:GetObject", "s3:ListBucket", "sqs:SendMessage",
                                              "states:StartExecution", "sqs:CreateQueue", "sqs:ReceiveMessage",
                                              "sqs:DeleteMessage"}, stack.calls
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
        Request("sqs:ReceiveMessage", f"{stack.queue_arn.removesuffix('-images')}-results-{OTHER}"),
    ]
    assert [r for r in refused if allowed(own, r)] == []


@pytest.fixture
def moto_enforcing_iam() -> Iterator[str]:
    """A moto server of this test's own, in its own process (the setting is global to moto), that
    enforces IAM after the set-up calls."""
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                              env={**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": str(SETUP_CALLS)},
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: _listening(port), 30, "moto server")
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(10)


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


def test_moto_enforcing_iam_refuses_another_gateways_objects(moto_enforcing_iam: str, tmp_path: Path) -> None:
    """What moto can enforce: an object's resource. It neither fills in a policy variable nor passes
    ``s3:prefix`` to a condition (a listing of any prefix passes), so the policy is rendered for the
    thing by hand and only object calls are judged: the keys the gateway builds for its own device
    pass, the same keys of another device are refused."""
    setup = boto3.session.Session(aws_access_key_id="setup", aws_secret_access_key="setup", region_name=REGION)
    iam = setup.client("iam", endpoint_url=moto_enforcing_iam)
    for bucket in ("src", "fin"):
        setup.client("s3", endpoint_url=moto_enforcing_iam).create_bucket(Bucket=bucket)
    iam.create_user(UserName=THING)
    key = iam.create_access_key(UserName=THING)["AccessKey"]
    iam.put_user_policy(UserName=THING, PolicyName="edge", PolicyDocument=json.dumps(render_policy(
        THING, source="src", final="fin", models="m", queue_arn=f"arn:aws:sqs:{REGION}:{ACCOUNT}:q",
        machine=f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:m")))  # SETUP_CALLS calls so far
    s3 = boto3.session.Session(aws_access_key_id=key["AccessKeyId"], aws_secret_access_key=key["SecretAccessKey"],
                               region_name=REGION).client("s3", endpoint_url=moto_enforcing_iam)
    mine, theirs = (config_from_dict({"site": "plant1", "line": "line1", "device": device,
                                      "drop_folder": str(tmp_path / "drop"), "work_folder": str(tmp_path / device),
                                      "aws": {"source_bucket": "src", "final_bucket": "fin", "queue_url": "q",
                                              "state_machine_arn": "m"}})
                    for device in (THING, OTHER))
    journal = Journal(mine.journal_path)
    image = journal.get(_spool(mine, journal, 1)[0])
    journal.close()
    assert image is not None
    s3.put_object(Bucket="src", Key=source_key(mine, image), Body=b"x")
    s3.put_object(Bucket="fin", Key=f"{result_day_prefix(mine, CAPTURED)}{image.image_id}.label.manifest", Body=b"x")
    for bucket, key_of_other in (("src", source_key(theirs, image)), ("fin", result_key(theirs, image))):
        with pytest.raises(ClientError, match="AccessDenied"):
            s3.put_object(Bucket=bucket, Key=key_of_other, Body=b"x")
    with pytest.raises(ClientError, match="AccessDenied"):
        s3.put_object(Bucket="fin", Key=result_key(mine, image), Body=b"{}")  # its own verdict
