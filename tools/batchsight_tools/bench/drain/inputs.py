"""The drain's input: small distinct JPEGs in the source bucket, and their messages in the queue.

They are uploaded and queued as the edge does (same keys, same message contract), on a few
threads so that queueing 1,000 images takes seconds, not the run.
"""
from __future__ import annotations

import hashlib
import io
import json
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
from botocore.config import Config as BotoConfig
from PIL import Image

from batchsight_tools.localcloud.stack import REGION, LocalCloud, StackOutputs

SEND_BATCH = 10  # SQS SendMessageBatch limit


def make_jpegs(count: int) -> list[bytes]:
    """Small, valid, distinct JPEGs (64 x 64, the smallest side the edge accepts)."""
    images = []
    for n in range(count):
        picture = Image.new("L", (64, 64), color=128)
        picture.putpixel((n % 64, (n // 64) % 64), 0)
        picture.putpixel(((n // 4096) % 64, 63), 255)
        buffer = io.BytesIO()
        picture.save(buffer, format="JPEG", quality=90)
        images.append(buffer.getvalue())
    if len(set(images)) != count:
        raise RuntimeError("images must be distinct (the key is their SHA-256)")
    return images


def pooled_client(cloud: LocalCloud, service: str, threads: int) -> Any:
    """A client of the local stack with a connection for each of ``threads`` threads (and spare)."""
    return boto3.client(service, endpoint_url=cloud.endpoint_url, region_name=REGION,
                        aws_access_key_id="testing", aws_secret_access_key="testing",
                        config=BotoConfig(max_pool_connections=threads * 2))


def queue_images(cloud: LocalCloud, outputs: StackOutputs, images: list[bytes], batch_id: str, *,
                 queue_url: str = "", threads: int = 8) -> float:
    """Upload to the source bucket and enqueue the image messages, as the edge does; seconds taken."""
    s3, sqs = pooled_client(cloud, "s3", threads), pooled_client(cloud, "sqs", threads)
    messages = [_message(outputs, data, batch_id, n) for n, data in enumerate(images)]
    started = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(lambda pair: s3.put_object(Bucket=outputs.source_bucket, Key=pair[1]["key"],
                                                 Body=pair[0], ContentType="image/jpeg"),
                      zip(images, messages, strict=True)))

        def send(chunk: list[dict[str, Any]]) -> None:
            response = sqs.send_message_batch(QueueUrl=queue_url or outputs.queue_url, Entries=[
                {"Id": str(i), "MessageBody": json.dumps(m)} for i, m in enumerate(chunk)])
            if response.get("Failed"):
                raise RuntimeError(f"send_message_batch failed: {response['Failed']}")

        list(pool.map(send, [messages[i:i + SEND_BATCH] for i in range(0, len(messages), SEND_BATCH)]))
    return time.perf_counter() - started


def _message(outputs: StackOutputs, data: bytes, batch_id: str, n: int) -> dict[str, Any]:
    """The image message the edge would send for the ``n``-th image of the batch."""
    image_id = hashlib.sha256(data).hexdigest()
    return {"v": 1, "bucket": outputs.source_bucket, "key": f"incoming/bench/l1/d1/2026/11/23/{image_id}.jpg",
            "image_id": image_id, "site": "bench", "line": "l1", "device": "d1",
            "captured_at": "2026-11-23T10:00:00Z", "batch_id": batch_id, "file_name": f"bench_{n:05d}.jpg"}
