"""How each AWS service turns an action into billed units: the rounding rules, one function each.

These know the billing rules (Lambda bills each invocation per millisecond; an SQS request is
one request per 64 KB chunk; a DynamoDB write is one unit per KB; a LIST page holds 1,000 keys)
and nothing about batchsight. What our functions and the gateway do with them is in
stack_charges.py and gateway_charges.py.
"""
from __future__ import annotations

import math

from batchsight_tools.costmodel.usage import Usage

KB = 1024
GB = 1024 ** 3
SQS_CHUNK_BYTES = 64 * KB
LIST_PAGE_KEYS = 1000
DYNAMODB_WRITE_UNIT_BYTES = 1 * KB
DYNAMODB_READ_UNIT_BYTES = 4 * KB
SAGEMAKER = "SageMaker"


def billed_seconds(seconds: float) -> float:
    """Lambda's duration of one invocation, rounded up to the millisecond."""
    return math.ceil(round(seconds * 1000.0, 6)) / 1000.0


def lambda_invocations(usage: Usage, function: str, *, memory_mb: float, seconds: float, arch: str,
                       count: int = 1, init_seconds: float = 0.0) -> None:
    """``count`` invocations of ``seconds`` each (the INIT phase of a cold one is billed too)."""
    usage.add("Lambda", f"{function} requests", "lambda.request", count)
    gb_seconds = count * memory_mb / 1024.0 * billed_seconds(seconds + init_seconds)
    usage.add("Lambda", f"{function} duration", f"lambda.gb_second.{arch}", gb_seconds)


def state_transitions(usage: Usage, item: str, count: int) -> None:
    usage.add("Step Functions", item, "stepfunctions.transition", count)


def s3_requests(usage: Usage, kind: str, item: str, count: float) -> None:
    """PUT, COPY, POST and LIST are the dear tier; GET and HEAD the cheap one; DELETE is free."""
    tier = {"PUT": "s3.tier1_request", "COPY": "s3.tier1_request", "LIST": "s3.tier1_request",
            "GET": "s3.tier2_request", "HEAD": "s3.tier2_request", "DELETE": "s3.delete_request"}[kind]
    usage.add("S3", f"{kind} {item}", tier, count)


def list_pages(keys: int) -> int:
    """ListObjectsV2 requests to list ``keys`` keys: a page holds 1,000, an empty listing is one."""
    return max(1, math.ceil(keys / LIST_PAGE_KEYS))


def s3_storage(usage: Usage, item: str, gb_months: float) -> None:
    usage.add("S3", f"storage {item}", "s3.storage_gb_month", gb_months)


def sqs_requests(usage: Usage, item: str, count: float, *, payload_bytes: int = 0) -> None:
    """Each request is billed once per started 64 KB of its payload."""
    chunks = max(1, math.ceil(payload_bytes / SQS_CHUNK_BYTES))
    usage.add("SQS", item, "sqs.request", count * chunks)


def sns_publishes(usage: Usage, item: str, count: float) -> None:
    usage.add("SNS", item, "sns.publish", count)


def dynamodb_writes(usage: Usage, item: str, count: float, *, item_bytes: int = 100) -> None:
    """A write (a failed conditional one too) costs one unit per started KB of the item."""
    units = max(1, math.ceil(item_bytes / DYNAMODB_WRITE_UNIT_BYTES))
    usage.add("DynamoDB", item, "dynamodb.write_request_unit", count * units)


def dynamodb_reads(usage: Usage, item: str, count: float, *, item_bytes: int = 100,
                   consistent: bool = True) -> None:
    """A strongly consistent read of up to 4 KB is one unit; an eventually consistent one half."""
    units = max(1, math.ceil(item_bytes / DYNAMODB_READ_UNIT_BYTES)) * (1.0 if consistent else 0.5)
    usage.add("DynamoDB", item, "dynamodb.read_request_unit", count * units)


def log_ingestion(usage: Usage, item: str, byte_count: float) -> None:
    usage.add("CloudWatch", f"logs {item}", "cloudwatch.logs_ingested_gb", byte_count / GB)


def data_out(usage: Usage, item: str, byte_count: float) -> None:
    usage.add("Data transfer", item, "internet.data_out_gb", byte_count / GB)


def kms_requests(usage: Usage, item: str, count: float) -> None:
    usage.add("KMS", item, "kms.request", count)


def instance_hours(usage: Usage, service: str, item: str, price: str, hours: float) -> None:
    """A hosted model's billed hours (instances or inference units, already rounded)."""
    usage.add(service, item, price, hours)


def sagemaker_data(usage: Usage, item: str, *, bytes_in: float, bytes_out: float) -> None:
    """SageMaker bills the data an endpoint processes, in and out."""
    usage.add(SAGEMAKER, f"data processed {item}", "sagemaker.data_processed_gb", (bytes_in + bytes_out) / GB)


def sagemaker_serverless(usage: Usage, item: str, *, memory_mb: float, seconds: float, count: float = 1) -> None:
    """Serverless inference: memory times inference time, per millisecond."""
    gb_seconds = count * memory_mb / 1024.0 * billed_seconds(seconds)
    usage.add(SAGEMAKER, f"serverless inference {item}", "sagemaker.serverless_gb_second", gb_seconds)


def monthly(usage: Usage, service: str, item: str, price: str, months: float) -> None:
    """A charge per month (keys, dashboards, alarm metrics, metric-months), for ``months`` of it."""
    usage.add(service, item, price, months)
