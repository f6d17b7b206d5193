"""The probe: what moto charges for one image's calls, with no model and no limiter.

If moto cannot serve the drain's calls as fast as the ideal asks, the pipeline's shortfall
is the emulator's, not the drain's: the table says which.
"""
from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from batchsight_tools.bench.drain.inputs import SEND_BATCH, make_jpegs, pooled_client, queue_images
from batchsight_tools.bench.drain.setup import DrainConfig
from batchsight_tools.localcloud.stack import LocalCloud, StackOutputs


def probe_moto(cloud: LocalCloud, outputs: StackOutputs, cfg: DrainConfig, threads: int) -> float:
    """moto's ceiling for the drain's calls, in images/s, with no model and no limiter.

    Per image, the calls the drain makes (get the image, put the result, copy the image,
    delete the source, delete the message, a tenth of a receive of 10), on ``threads``
    threads in one process with moto, like the drain Lambdas. The probe's queue holds about
    as many messages as the measured queue does on average (images / 2), because moto's
    SQS cost grows with the queue's depth.
    """
    sqs, s3 = pooled_client(cloud, "sqs", threads), pooled_client(cloud, "s3", threads)
    queue_url = sqs.create_queue(QueueName="bench-probe")["QueueUrl"]
    images = [data + b"probe" for data in make_jpegs(cfg.probe)]  # distinct from the batch
    queue_images(cloud, outputs, images, "probe", queue_url=queue_url)
    _fill_queue(sqs, queue_url, max(0, cfg.images // 2 - cfg.probe // 2))

    def one(message: dict[str, Any]) -> None:
        body = json.loads(message["Body"])
        s3.get_object(Bucket=body["bucket"], Key=body["key"])["Body"].read()
        result_key = body["key"].replace("incoming/", "results/").replace(".jpg", ".json")
        s3.put_object(Bucket=outputs.final_bucket, Key=result_key, Body=b"{}" * 400)
        s3.copy_object(Bucket=outputs.final_bucket, Key=result_key.replace(".json", ".jpg"),
                       CopySource={"Bucket": body["bucket"], "Key": body["key"]})
        s3.delete_object(Bucket=body["bucket"], Key=body["key"])
        sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])

    done, started = 0, time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        while done < cfg.probe:
            messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10,
                                           WaitTimeSeconds=0).get("Messages", [])
            if not messages:
                break
            list(pool.map(one, messages))
            done += len(messages)
    ceiling = done / (time.perf_counter() - started)
    sqs.delete_queue(QueueUrl=queue_url)
    _empty_final_bucket(cloud, outputs)
    return ceiling


def _fill_queue(sqs: Any, queue_url: str, count: int) -> None:
    """``count`` empty messages after the probe's own, so they are received last."""
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda start: sqs.send_message_batch(QueueUrl=queue_url, Entries=[
            {"Id": str(i), "MessageBody": "{}"} for i in range(min(SEND_BATCH, count - start))]),
            range(0, count, SEND_BATCH)))


def _empty_final_bucket(cloud: LocalCloud, outputs: StackOutputs) -> None:
    """Every version the probe wrote, so the execution's results are counted alone."""
    s3 = cloud.client("s3")
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=outputs.final_bucket):
        for item in page.get("Versions", []) + page.get("DeleteMarkers", []):
            s3.delete_object(Bucket=outputs.final_bucket, Key=item["Key"], VersionId=item["VersionId"])
