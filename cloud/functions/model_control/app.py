"""ModelControl: start, poll and stop the configured model backend.

One function for the three actions keeps every backend call behind one role and one
code path; the state machine passes the last ``ModelState`` back in on each poll.

A stop first renews the execution's model lock: an endpoint that is still Creating or Updating
refuses deletion (ModelBusy), and the state machine retries the stop for up to about three
hours, far past the lease. Renewing on every attempt keeps another execution from taking the
lock over and starting the model that this one is about to delete; a lock that is no longer
ours (taken over) raises LockLost, and the model is left to its new owner.

The model found hosted (at the start, or by a later status poll) is announced to every gateway
of the stack (hosting_notice.py), so each sends the images waiting at its edge now, to ride this
hosting (a site-wide ``batch.follow``). Not at STARTING: a gateway follows once per hosting, and
the images that reach it during a start of minutes must ride it too. Only for a backend billed
while hosted: with nothing billed (the detector in the drain) there is no hosting to share, and
each execution's start would set every gateway sending its last few images, whose executions
would start and announce again.
"""
from __future__ import annotations

import time
from typing import Any

from aws_lambda_powertools import Logger

from batchsight_pipeline.aws import client
from batchsight_pipeline.backends import ModelState, backend_from_settings
from batchsight_pipeline.backends.base import HOSTED
from batchsight_pipeline.hosting_notice import announce, notice_body
from batchsight_pipeline.lock import LockLost, renew
from batchsight_pipeline.metrics import metrics, record_model
from batchsight_pipeline.routes import serving
from batchsight_pipeline.settings import Settings

logger = Logger(service="batchsight-model-control")


@logger.inject_lambda_context
@metrics.log_metrics
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """The model's state after the action, as the dict the state machine passes back in."""
    with serving(event) as route:  # the execution's model route: its backend, its lock
        logger.append_keys(route=route)
        return control(event, route)


def control(event: dict[str, Any], route: str) -> dict[str, Any]:
    """Start, poll or stop the route's model."""
    action = event.get("action")
    settings = Settings.from_env()
    backend = backend_from_settings(settings)
    if action == "start":
        state = backend.start(run_token=str(event["execution"]))
    elif action == "status":
        state = backend.status(ModelState(**event["model"]))
    elif action == "stop":
        if event.get("execution") and not renew(str(event["execution"]), time.time()):
            raise LockLost("the model lock is no longer this execution's: the model is left to its owner")
        state = backend.stop()
    else:
        raise ValueError(f"unknown action {action!r}; expected start, status or stop")
    logger.info("model " + str(action), extra={"execution": event.get("execution"), **state.to_dict()})
    if backend.idle_cost and action in ("start", "status") and state.status == HOSTED:  # polled no further
        announce(client("sqs"), settings.result_queue_prefix,
                 notice_body(execution=str(event.get("execution", "")), status=state.status, model_id=state.model_id,
                             route=route))
    # on a stop, the state passed in (StopModel: the hosted one; StopModelAfterFailure: none) dates the start;
    # with nothing billed while hosted, the execution's own metrics say the same, for free
    if backend.idle_cost:
        record_model(action, state.status, previous=event.get("model"))
    return state.to_dict()
