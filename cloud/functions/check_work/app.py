"""CheckWork: is there anything to do, and how many drain workers does it deserve?

In-flight messages count as work: a worker may have died holding them, and they come
back (or reach the dead-letter queue) once their visibility timeout runs out.
"""
from __future__ import annotations

import math
from typing import Any

from aws_lambda_powertools import Logger
from botocore.exceptions import BotoCoreError, ClientError

from batchsight_pipeline.aws import client
from batchsight_pipeline.metrics import metrics, record_queue
from batchsight_pipeline.settings import Settings

logger = Logger(service="batchsight-check-work")
MESSAGES_PER_RECEIVE = 10
TALLY_FIELDS = ("processed", "anomalous", "poisoned", "retried")
_VISIBLE, _IN_FLIGHT = "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"


def queue_depth(queue_url: str) -> tuple[int, int]:
    """(visible, in flight) messages of a queue, as SQS approximates them."""
    attributes = client("sqs").get_queue_attributes(
        QueueUrl=queue_url, AttributeNames=[_VISIBLE, _IN_FLIGHT])["Attributes"]
    return int(attributes[_VISIBLE]), int(attributes[_IN_FLIGHT])  # missing: fail, never guess "no work"


def dead_letter_depth(queue_url: str) -> int | None:
    """Messages in the dead-letter queue (for the metric), or None when it cannot be read.

    Not-visible ones count too: someone looking at the queue in the console hides them for a while.
    """
    try:
        return sum(queue_depth(queue_url))
    except (BotoCoreError, ClientError, KeyError) as exc:  # the metric is not worth failing the batch for
        logger.warning("dead-letter queue depth not read", extra={"error": str(exc)})
        return None


def plan(visible: int, in_flight: int, settings: Settings) -> dict[str, Any]:
    """No more workers than there are receive batches: idle workers only cost invocations."""
    workers = min(settings.drain_workers, max(1, math.ceil(visible / MESSAGES_PER_RECEIVE)))
    return {"has_work": visible + in_flight > 0, "visible": visible, "in_flight": in_flight,
            "poll_seconds": settings.poll_seconds, "workers": list(range(workers))}


def tally(previous: dict[str, int] | None, drained: list[dict[str, int]] | None) -> dict[str, int]:
    """The execution's running totals: ASL cannot sum the Map's outputs, so this step does."""
    totals = {name: int((previous or {}).get(name, 0)) for name in TALLY_FIELDS}
    for outcome in drained or []:
        for name in TALLY_FIELDS:
            totals[name] += int(outcome.get(name, 0))
    return totals


@logger.inject_lambda_context
@metrics.log_metrics
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    settings = Settings.from_env()
    visible, in_flight = queue_depth(settings.queue_url)
    record_queue(visible, in_flight, dead_letter_depth(settings.dead_letter_queue_url))
    result = {**plan(visible, in_flight, settings),
              "tally": tally(event.get("tally"), event.get("drained"))}
    logger.info("queue checked", extra={"execution": event.get("execution"), **result})
    return result
