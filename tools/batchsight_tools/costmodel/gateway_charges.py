"""What the gateway's calls cost: its uploads, its messages and its batch starts (cloud_link.py).

Per image one PUT into the source bucket (data into AWS is free); per ten images one
SendMessageBatch (ten messages of about 500 bytes fit one 64 KB request); per batch one
StartExecution, which Step Functions does not bill (its transitions are billed).
The result pull is result_pull.py.
"""
from __future__ import annotations

import math

import batchsight_tools.costmodel.meters as meters
from batchsight_tools.costmodel.stack_charges import MESSAGE_BYTES
from batchsight_tools.costmodel.usage import Usage

SEND_BATCH = 10  # send_message_batch takes ten entries


def uploaded(usage: Usage, images: int) -> None:
    meters.s3_requests(usage, "PUT", "of the image by the gateway", images)


def enqueued(usage: Usage, images: int) -> None:
    sends = math.ceil(images / SEND_BATCH)
    meters.sqs_requests(usage, "SendMessageBatch by the gateway", sends, payload_bytes=SEND_BATCH * MESSAGE_BYTES)


def notified_by_s3(usage: Usage, images: int) -> None:
    """The AWS sample's path: an S3 event notification sends one SQS message per object."""
    meters.sqs_requests(usage, "SendMessage by S3 event notifications", images, payload_bytes=MESSAGE_BYTES * 3)
