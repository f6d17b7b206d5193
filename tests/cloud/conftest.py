"""Fixtures of the function tests: AWS in a moto server over HTTP, the stack's environment, a Lambda context.

The functions reach AWS through ``batchsight_pipeline.aws.client`` as they do in Lambda; only
``AWS_ENDPOINT_URL`` differs, pointing at a moto server on 127.0.0.1. moto keeps its state per
process, and ``mock_aws`` (in other tests) resets it, so every test creates resources of its own,
under names of its own, instead of sharing any.
"""
from __future__ import annotations

import logging
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import boto3
import pytest

from batchsight_pipeline import aws
from tests.cloud import fake_backend
from tests.cloud.moto_stack import ACCOUNT, REGION, Moto, Stack, unique

CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": REGION}
# A shell's AWS settings must not lead the functions' clients anywhere but to moto.
UNSET = ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_SQS", "AWS_ENDPOINT_URL_DYNAMODB",
         "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL_SFN", "SF_EXECUTION_HISTORY_TYPE")
SERVICES = ("dynamodb", "s3", "sqs", "ssm", "stepfunctions")  # what the functions call


@pytest.fixture(scope="package")
def moto_server() -> Iterator[Moto]:
    """One moto server for the tests of this folder, on a free port of 127.0.0.1."""
    from moto.server import ThreadedMotoServer

    werkzeug = logging.getLogger("werkzeug")
    level = werkzeug.level
    werkzeug.setLevel(logging.WARNING)  # one line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield Moto(f"http://{host}:{port}", boto3.session.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION))
    aws.reset()  # the functions' clients must not lead later tests to a server that is gone
    server.stop()
    werkzeug.setLevel(level)


@pytest.fixture
def moto(moto_server: Moto, monkeypatch: pytest.MonkeyPatch) -> Moto:
    """AWS for this test: the functions' clients reach moto, with fake credentials.

    Executions of a state machine stay RUNNING until stopped (moto executes none), so a test
    decides which owner of the model lock is alive.
    """
    from moto.core.config import default_user_config

    for name in UNSET:
        monkeypatch.delenv(name, raising=False)
    for name, value in {**CREDENTIALS, "AWS_ENDPOINT_URL": moto_server.endpoint_url}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setitem(default_user_config, "stepfunctions", {"execute_state_machine": False})
    if not functions_reach(moto_server):
        aws.reset()  # made by another test, for somewhere else
    return moto_server


def functions_reach(server: Moto) -> bool:
    """Whether the functions' shared clients talk to this server, in this region.

    Making a client costs a tenth of a second (botocore loads its API model), so the clients
    are kept from test to test as long as they reach the same server: as a warm Lambda keeps them.
    """
    return all(aws.client(service).meta.endpoint_url == server.endpoint_url
               and aws.client(service).meta.region_name == REGION for service in SERVICES)


@pytest.fixture
def lock_table(moto: Moto, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The model lock's DynamoDB table, keyed as the template's (lock_id); LOCK_TABLE names it."""
    dynamodb = moto.client("dynamodb")
    name = unique("locks")
    dynamodb.create_table(TableName=name, BillingMode="PAY_PER_REQUEST",
                          KeySchema=[{"AttributeName": "lock_id", "KeyType": "HASH"}],
                          AttributeDefinitions=[{"AttributeName": "lock_id", "AttributeType": "S"}])
    monkeypatch.setenv("LOCK_TABLE", name)
    monkeypatch.setenv("LOCK_LEASE_SECONDS", "900")
    yield name
    dynamodb.delete_table(TableName=name)


@pytest.fixture
def fake_model(monkeypatch: pytest.MonkeyPatch) -> fake_backend.Hosting:
    """A fresh, stopped fake model; the functions build ``FakeBackend`` from MODEL_BACKEND."""
    hosting = fake_backend.Hosting()
    monkeypatch.setattr(fake_backend, "hosting", hosting)
    monkeypatch.setenv("MODEL_BACKEND", fake_backend.SPEC)
    return hosting


@pytest.fixture
def stack(moto: Moto, lock_table: str, fake_model: fake_backend.Hosting, monkeypatch: pytest.MonkeyPatch) -> Stack:
    """The stack's queues, buckets and lock table in moto, and the functions' environment naming them.

    The settings are the template's Globals, with a short poll and a rate no test waits for.
    """
    sqs, s3 = moto.client("sqs"), moto.client("s3")
    stack = Stack(sqs=sqs, s3=s3, queue=sqs.create_queue(QueueName=unique("images"))["QueueUrl"],
                  dlq=sqs.create_queue(QueueName=unique("dead-letters"))["QueueUrl"],
                  source_bucket=unique("source"), final_bucket=unique("final"), lock_table=lock_table,
                  model=fake_model)
    for bucket in (stack.source_bucket, stack.final_bucket):
        s3.create_bucket(Bucket=bucket)
    environment = {"QUEUE_URL": stack.queue, "DEAD_LETTER_QUEUE_URL": stack.dlq,
                   "SOURCE_BUCKET": stack.source_bucket, "FINAL_BUCKET": stack.final_bucket,
                   "POLL_SECONDS": "1", "START_TIMEOUT_SECONDS": "1800", "DRAIN_WORKERS": "2",
                   "DETECT_CONCURRENCY": "4", "DETECT_TPS": "200", "MAX_RECEIVE_COUNT": "3",
                   "POWERTOOLS_METRICS_NAMESPACE": "batchsight", "POWERTOOLS_LOG_LEVEL": "WARNING"}
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    return stack


@pytest.fixture
def lambda_context() -> Any:
    """The parts of Lambda's context object that the handlers and Powertools read."""
    return SimpleNamespace(function_name="fn", function_version="$LATEST", memory_limit_in_mb=1024,
                           invoked_function_arn=f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:fn",
                           aws_request_id="req-1", get_remaining_time_in_millis=lambda: 300_000)
