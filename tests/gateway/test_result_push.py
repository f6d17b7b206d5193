"""Results pushed to the gateway's own queue, and listing as the fallback: real S3 and SQS (moto server).

The receiver creates its queue, takes each pushed result through the puller (the one way a
result is stored) and deletes the message; a result that arrives twice is stored once. While
push works the puller lists only for images push has not brought within results.fallback_seconds.
"""
from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import boto3
import pytest

from batchsight.config import Config, config_from_dict
from batchsight.journal import ImageState, Journal
from batchsight.push_receiver import RETENTION_SECONDS, ResultReceiver
from batchsight.results import PushState, ResultPuller, result_key
from tests.gateway.journal_support import row
from tests.support import moto_server, wait_for

FALLBACK = 120.0


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    with moto_server() as url:
        yield url


@pytest.fixture
def clients(endpoint: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}.items():
        monkeypatch.setenv(name, value)
    return {service: boto3.client(service, endpoint_url=endpoint, region_name="us-east-1") for service in ("s3", "sqs")}


@pytest.fixture
def config(tmp_path: Path, clients: dict[str, Any]) -> Config:
    bucket, prefix = f"final-{uuid.uuid4().hex[:8]}", f"stack-{uuid.uuid4().hex[:8]}-results"
    clients["s3"].create_bucket(Bucket=bucket)
    return config_from_dict({
        "drop_folder": str(tmp_path / "drop"), "work_folder": str(tmp_path / "work"), "device": "gw1",
        "results": {"fallback_seconds": FALLBACK},
        "aws": {"source_bucket": "source", "final_bucket": bucket, "queue_url": "q", "state_machine_arn": "a",
                "result_queue_prefix": prefix}})


@pytest.fixture
def journal(config: Config) -> Iterator[Journal]:
    journal = Journal(config.journal_path)
    yield journal
    journal.close()


def submitted(journal: Journal, n: int = 1) -> str:
    image_id = f"{n:064x}"
    journal.add({"image_id": image_id, "file_name": f"{n}.jpg", "path": f"/x/{n}.jpg", "ext": "jpg", "size": 10,
                 "width": 64, "height": 64, "captured_at": "2026-12-05T01:00:00.000Z"})
    journal.cut_batch(f"b{n}", max_images=10)
    journal.advance([image_id], ImageState.SUBMITTED)
    return image_id


def written(config: Config, clients: dict[str, Any], journal: Journal, image_id: str) -> tuple[str, dict[str, Any]]:
    """The image's result document in the final bucket, as the drain writes it; its key and document."""
    key = result_key(config, row(journal, image_id))
    document = {"v": 1, "image_id": image_id, "result": {"IsAnomalous": True, "Confidence": 0.9}}
    clients["s3"].put_object(Bucket=config.aws.final_bucket, Key=key, Body=json.dumps(document).encode())
    return key, document


class Receiving:
    """A receiver running on its own thread, and the batch ids it reported."""

    def __init__(self, config: Config, journal: Journal, clients: dict[str, Any]) -> None:
        self.state = PushState()
        self.puller = ResultPuller(config, journal, s3=clients["s3"], push=self.state)
        self.reported: list[str] = []
        self.receiver = ResultReceiver(config, self.puller, self.state, sqs=clients["sqs"],
                                       on_hosted=self.reported.append)
        self.receiver.start()
        wait_for(lambda: self.state.since() is not None, 10, "the result queue created")
        self.url = clients["sqs"].get_queue_url(QueueName=f"{config.aws.result_queue_prefix}-gw1")["QueueUrl"]


@pytest.fixture
def receiving(config: Config, journal: Journal, clients: dict[str, Any]) -> Iterator[Receiving]:
    receiving = Receiving(config, journal, clients)
    yield receiving
    receiving.receiver.stop()


def push(clients: dict[str, Any], url: str, key: str, image_id: str, document: dict[str, Any] | None) -> None:
    body = {"v": 1, "image_id": image_id, "key": key, **({"document": document} if document else {})}
    clients["sqs"].send_message(QueueUrl=url, MessageBody=json.dumps(body))


def depth(clients: dict[str, Any], url: str) -> int:
    attributes = clients["sqs"].get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]) + int(attributes["ApproximateNumberOfMessagesNotVisible"])


def test_the_queue_is_created_encrypted_and_kept_for_days(receiving: Receiving, clients: dict[str, Any]) -> None:
    attributes = clients["sqs"].get_queue_attributes(QueueUrl=receiving.url, AttributeNames=["All"])["Attributes"]
    assert attributes["SqsManagedSseEnabled"] == "true"
    assert int(attributes["MessageRetentionPeriod"]) == RETENTION_SECONDS


def test_a_queue_an_older_version_made_otherwise_is_given_our_attributes(
        config: Config, journal: Journal, clients: dict[str, Any]) -> None:
    clients["sqs"].create_queue(QueueName=f"{config.aws.result_queue_prefix}-gw1",
                                Attributes={"MessageRetentionPeriod": "60"})
    receiving = Receiving(config, journal, clients)
    attributes = clients["sqs"].get_queue_attributes(QueueUrl=receiving.url, AttributeNames=["All"])["Attributes"]
    receiving.receiver.stop()
    assert int(attributes["MessageRetentionPeriod"]) == RETENTION_SECONDS


def test_a_pushed_result_is_stored_without_listing(receiving: Receiving, config: Config, journal: Journal,
                                                   clients: dict[str, Any]) -> None:
    image_id = submitted(journal)
    key, document = written(config, clients, journal, image_id)
    push(clients, receiving.url, key, image_id, document)
    wait_for(lambda: row(journal, image_id).state == ImageState.RESULT_STORED, 30, "the pushed result stored")
    assert json.loads(row(journal, image_id).result_json or "") == document
    assert receiving.reported == ["b1"]
    wait_for(lambda: depth(clients, receiving.url) == 0, 30, "the message deleted")
    assert receiving.puller.poll() == [] and receiving.puller.lists == 0  # nothing due a listing


def test_a_key_only_message_fetches_its_document(receiving: Receiving, config: Config, journal: Journal,
                                                 clients: dict[str, Any]) -> None:
    image_id = submitted(journal)
    key, document = written(config, clients, journal, image_id)
    push(clients, receiving.url, key, image_id, None)
    wait_for(lambda: row(journal, image_id).state == ImageState.RESULT_STORED, 30, "the fetched result stored")
    assert json.loads(row(journal, image_id).result_json or "") == document


def test_a_model_hosted_twice_or_for_another_key_or_garbled_is_stored_once_and_dropped(
        receiving: Receiving, config: Config, journal: Journal, clients: dict[str, Any]) -> None:
    first, other = submitted(journal, 1), submitted(journal, 2)
    key, document = written(config, clients, journal, first)
    push(clients, receiving.url, key, first, document)
    push(clients, receiving.url, key, first, document)
    push(clients, receiving.url, key, other, {**document, "image_id": other})  # a key that is not the image's
    clients["sqs"].send_message(QueueUrl=receiving.url, MessageBody="not a pushed result")
    wait_for(lambda: depth(clients, receiving.url) == 0, 30, "every message taken")
    assert receiving.reported == ["b1"]
    assert row(journal, other).state == ImageState.SUBMITTED


def test_with_push_up_only_images_push_missed_are_listed_once_per_fallback(
        config: Config, journal: Journal, clients: dict[str, Any]) -> None:
    state = PushState()
    puller = ResultPuller(config, journal, s3=clients["s3"], push=state)
    state.up(1000.0)
    first, second = submitted(journal, 1), submitted(journal, 2)
    written(config, clients, journal, first)
    assert puller.poll(1001.0) == [] and puller.lists == 0  # push may still bring them
    assert puller.poll(1001.0 + FALLBACK) == ["b1"] and puller.lists == 1
    written(config, clients, journal, second)
    assert puller.poll(1002.0 + FALLBACK) == [] and puller.lists == 1  # its day was listed just now
    assert puller.poll(1001.0 + 2 * FALLBACK) == ["b2"] and puller.lists == 2


def test_images_from_before_push_came_up_and_every_image_without_push_are_listed(
        config: Config, journal: Journal, clients: dict[str, Any]) -> None:
    state = PushState()
    puller = ResultPuller(config, journal, s3=clients["s3"], push=state)
    submitted(journal)
    assert puller.poll(1000.0) == [] and puller.lists == 1  # push down: listed at once
    state.up(1005.0)
    written(config, clients, journal, submitted(journal, 2))
    written(config, clients, journal, f"{1:064x}")
    assert puller.poll(1001.0 + FALLBACK) == ["b1"]  # seen waiting before push came up: listed
    state.down()
    assert puller.poll(1002.0 + FALLBACK) == ["b2"] and puller.lists == 3


def test_push_switched_off_is_reported_down_so_the_puller_lists_every_poll(receiving: Receiving,
                                                                           config: Config) -> None:
    receiving.receiver.reconfigure(replace(config, results=replace(config.results, push=False)))
    wait_for(lambda: receiving.state.since() is None, 40, "push reported down")


def test_a_hosting_notice_is_reported_as_the_model_hosted_and_deleted(receiving: Receiving,
                                                                      clients: dict[str, Any]) -> None:
    """Another gateway's execution started the model: this edge hears it and follows (batch.follow)."""
    notice = {"v": 1, "kind": "hosting", "execution": "gw2-20261205T010000Z-0a1b2c3d", "status": "HOSTED",
              "model": "casting"}
    clients["sqs"].send_message(QueueUrl=receiving.url, MessageBody=json.dumps(notice))
    wait_for(lambda: receiving.reported == [notice["execution"]], 30, "the notice reported")
    wait_for(lambda: depth(clients, receiving.url) == 0, 30, "the notice deleted")


def test_another_models_hosting_is_deleted_without_following_it(receiving: Receiving, config: Config,
                                                              clients: dict[str, Any]) -> None:
    """A site's gateways share the result queue prefix, not the model: this gateway (aws.model
    default) must not send its images because another product's model was started."""
    other = {"v": 1, "kind": "hosting", "execution": "pcb-gw-20261205T010000Z-0a1b2c3d", "status": "HOSTED",
             "model": "pcb-detector", "route": "pcb"}
    own = {**other, "execution": "gw3-20261205T010500Z-0a1b2c3d", "route": config.aws.model}
    for notice in (other, own):
        clients["sqs"].send_message(QueueUrl=receiving.url, MessageBody=json.dumps(notice))
    wait_for(lambda: depth(clients, receiving.url) == 0, 30, "both notices deleted")
    assert receiving.reported == [own["execution"]]


def test_doctor_says_whether_results_can_be_pushed(config: Config, clients: dict[str, Any]) -> None:
    """The queue is created as the component creates it at start; without the stack's prefix, or
    with push off, doctor says results will be listed, and how to change that."""
    from batchsight import doctor_aws
    from batchsight.doctor_checks import Verdict, passed

    def check(config: Config) -> Any:
        resources = doctor_aws.Resources(config, clients, doctor_aws.Link(), clock_ok=True)
        return doctor_aws.result_queue_check(resources, passed("device id", "gw1"))

    created = check(config)
    assert created.verdict is Verdict.PASS and created.detail == f"{config.aws.result_queue_prefix}-gw1"
    assert clients["sqs"].get_queue_url(QueueName=created.detail)["QueueUrl"]
    unset = check(replace(config, aws=replace(config.aws, result_queue_prefix="")))
    assert unset.verdict is Verdict.WARN and "ResultQueuePrefix" in unset.detail
    off = check(replace(config, results=replace(config.results, push=False)))
    assert off.verdict is Verdict.SKIP
