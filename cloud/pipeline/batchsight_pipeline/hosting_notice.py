"""Tell every gateway of the stack that the model is hosted, by push.

A gateway cuts a "follow" batch when it learns that the model is hosted (``batch.follow``): the
images waiting at the edge then ride this hosting instead of paying for a start of their own.
Alone, a gateway learns it only from its own results. On a site, tens of gateways share one
model, and each would otherwise start it at its own batch age: the notice, sent when an
execution finds the model hosted (ModelControl, for backends billed while hosted), lets every
gateway send what waits at once.

The notice goes to each gateway's own result queue (``{prefix}-{device}``, result_push.py), found
with ListQueues by the prefix, so no list of gateways is kept anywhere: a gateway that has started
with push has a queue, and hears it. Like a pushed result, it is a hint, never the record: a
notice that cannot be sent only costs a gateway the wait for its own batch age. So every failure
is logged, never raised.
"""
from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from aws_lambda_powertools import Logger
from botocore.exceptions import BotoCoreError, ClientError

from batchsight_pipeline.contracts import CONTRACT_VERSION

__all__ = ["announce", "notice_body"]

logger = Logger(service="batchsight-hosting-notice")
SENDERS = 8  # SendMessage calls at once: a site of hundreds of gateways hears in a second or two


def notice_body(*, execution: str, status: str, model_id: str, route: str) -> str:
    """The message (docs/contracts.md, "Model hosting pushed to the gateways"); a gateway follows
    only its own model route's hosting."""
    return json.dumps({"v": CONTRACT_VERSION, "kind": "hosting", "execution": execution.rsplit(":", 1)[-1],
                       "status": status, "model": model_id, "route": route})


def announce(sqs: Any, prefix: str, body: str) -> int:
    """Send ``body`` to every gateway result queue under ``prefix``; the number of queues reached."""
    if not prefix:
        return 0  # the stack pushes nothing: gateways follow their own results only
    try:
        urls = _queues(sqs, prefix)
    except (ClientError, BotoCoreError) as exc:
        logger.warning("model hosting not announced: the result queues could not be listed",
                       extra={"prefix": prefix, "error": str(exc)})
        return 0
    with ThreadPoolExecutor(max_workers=SENDERS) as pool:
        reached = sum(pool.map(lambda url: _send(sqs, url, body), urls))
    logger.info("model hosting announced", extra={"queues": len(urls), "reached": reached})
    return reached


def _queues(sqs: Any, prefix: str) -> list[str]:
    urls: list[str] = []
    for page in sqs.get_paginator("list_queues").paginate(QueueNamePrefix=f"{prefix}-",
                                                          PaginationConfig={"PageSize": 1000}):
        urls.extend(page.get("QueueUrls", []))
    return urls


def _send(sqs: Any, url: str, body: str) -> bool:
    try:
        sqs.send_message(QueueUrl=url, MessageBody=body)
    except (ClientError, BotoCoreError) as exc:  # a queue deleted since the listing, say
        logger.warning("model hosting not announced to one gateway", extra={"queue": url, "error": str(exc)})
        return False
    return True
