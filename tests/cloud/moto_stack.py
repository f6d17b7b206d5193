"""The stack's resources in a moto server, as the function tests see them (conftest.py makes them).

Tests use their own clients (``Moto.client``) to set the scene and to look at the outcome; the
functions use theirs, from ``batchsight_pipeline.aws``, as in Lambda.
"""
from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

import boto3

from batchsight_pipeline.routes import DEFAULT, lock_id
from tests.cloud.fake_backend import Hosting

REGION, ACCOUNT = "us-east-1", "123456789012"


def unique(prefix: str) -> str:
    """A resource name of this test's own: moto's state is shared by the whole process."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@dataclass(frozen=True)
class Moto:
    """The moto server: its URL, and a session for the tests' own clients (it loads each API model once)."""

    endpoint_url: str
    session: boto3.session.Session

    def client(self, service: str) -> Any:
        return self.session.client(service, endpoint_url=self.endpoint_url)


@dataclass(frozen=True)
class Stack:
    """The queues, buckets and lock table the functions' environment names, and the fake model."""

    sqs: Any
    s3: Any
    queue: str
    dlq: str
    source_bucket: str
    final_bucket: str
    lock_table: str
    model: Hosting

    def queue_image(self, body: bytes, *, n: int = 0, site: str = "s1", line: str = "l1") -> dict[str, Any]:
        """An image in the source bucket and its message in the queue, as the edge sends them; the message."""
        image_id = f"{n:064x}"
        key = f"incoming/{site}/{line}/d1/2026/11/23/{image_id}.jpg"
        self.s3.put_object(Bucket=self.source_bucket, Key=key, Body=body)
        message = {"v": 1, "bucket": self.source_bucket, "key": key, "image_id": image_id, "site": site,
                   "line": line, "device": "d1", "captured_at": "2026-11-23T10:00:00Z", "batch_id": "b-1",
                   "file_name": f"{n}.jpg"}
        self.sqs.send_message(QueueUrl=self.queue, MessageBody=json.dumps(message))
        return message

    def depth(self, queue_url: str) -> int:
        """Messages in a queue, visible or in flight."""
        attributes = self.sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=[
            "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
        return int(attributes["ApproximateNumberOfMessages"]) + int(attributes["ApproximateNumberOfMessagesNotVisible"])


def lock_holder(moto: Moto, table: str, route: str = DEFAULT) -> tuple[str, int] | None:
    """(owner, expires_at) of the route's model lock item, or None when there is none."""
    item = moto.client("dynamodb").get_item(TableName=table, Key={"lock_id": {"S": lock_id(route)}},
                                            ConsistentRead=True).get("Item")
    return (item["owner"]["S"], int(item["expires_at"]["N"])) if item else None
