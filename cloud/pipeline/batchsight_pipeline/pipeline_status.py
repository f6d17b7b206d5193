"""The pipeline's status object: how the cloud tells the gateways about its load (backpressure).

CheckWork writes one small JSON document, ``status/pipeline.json`` in the final bucket, at every
check (contracts/schemas/pipeline_status.schema.json). Why there: every gateway already talks to
that bucket (it polls it for results) and needs no new connection, only read access to this one
key (EdgeDevicePolicy's ReadPipelineStatus; no gateway may write it, so none can speak for the
pipeline); the object outlives the execution that wrote it; and one PUT per drain round costs
nothing next to the images. (SQS attributes cannot carry our own fields, and an execution's
output exists only once it has ended.) It sits outside ``results/``, so nothing that lists
result documents meets it.

Besides the load, it says when the image queue was last seen empty (``queue_empty_at``): an image
submitted before then whose source object is gone and whose result never came is lost, and only
such an image may a gateway send again. A failure to read or write it is logged, never raised:
the status must not fail a batch and keep the model hosted.
"""
from __future__ import annotations

import json
from datetime import datetime, UTC
from typing import Any

from aws_lambda_powertools import Logger
from botocore.exceptions import BotoCoreError, ClientError

from batchsight_pipeline.aws import client
from batchsight_pipeline.overload import Load
from batchsight_pipeline.routes import DEFAULT, current

logger = Logger(service="batchsight-pipeline-status")
STATUS_KEY = "status/pipeline.json"  # the default route's; another route's is status/pipeline-{route}.json
VERSION = 1


def status_key() -> str:
    """The status object of the route being served (routes.serving): each model has its own load."""
    route = current()
    return STATUS_KEY if route == DEFAULT else f"status/pipeline-{route}.json"


def iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def document(load: Load, *, now: float, max_units: int, unit_tps: float, queue_empty_at: str,
             execution: str, in_flight: int, idle: bool = False) -> dict[str, Any]:
    """The status as the gateways read it (the drain rate: measured per unit, else DetectTps)."""
    reason = ""
    if load.saturated:
        reason = (f"the pipeline runs at its ceiling ({load.units} of MaxScaleUnits {max_units}) and falls "
                  f"behind: {load.backlog} images waiting, about {load.behind_seconds / 60:.0f} min to clear")
    return {"v": VERSION, "updated_at": iso(now), "state": "idle" if idle else load.state,
            "backpressure": load.saturated, "backlog": load.backlog, "in_flight": in_flight,
            "arrival_per_minute": round(load.arrival_rate * 60, 1),
            "drain_per_minute": round((load.unit_rate or unit_tps) * load.units * 60, 1),
            "units": load.units, "max_units": max_units,
            "backlog_minutes": round(load.behind_seconds / 60, 1), "queue_empty_at": queue_empty_at,
            "execution": execution.rsplit(":", 1)[-1][:80], "reason": reason[:500]}


def read(bucket: str) -> dict[str, Any] | None:
    """The last status written, or None (none yet, or unreadable)."""
    try:
        body = client("s3").get_object(Bucket=bucket, Key=status_key())["Body"].read()
        loaded = json.loads(body)
    except (BotoCoreError, ClientError, ValueError) as exc:
        if not (isinstance(exc, ClientError) and exc.response["Error"]["Code"] in ("NoSuchKey", "404")):
            logger.warning("pipeline status not read", extra={"error": str(exc)})
        return None
    return loaded if isinstance(loaded, dict) else None


def write(bucket: str, status: dict[str, Any]) -> bool:
    """Store the status; False (logged) when it could not be written."""
    try:
        client("s3").put_object(Bucket=bucket, Key=status_key(), Body=json.dumps(status).encode(),
                                ContentType="application/json", CacheControl="no-cache")
    except (BotoCoreError, ClientError) as exc:
        logger.warning("pipeline status not written", extra={"error": str(exc)})
        return False
    return True


def queue_empty_at(previous: dict[str, Any] | None, *, now: float, backlog: int) -> str:
    """Now when the queue is empty, else when it last was (as the previous status said)."""
    if backlog == 0:
        return iso(now)
    return str((previous or {}).get("queue_empty_at") or "")
