"""CheckWork: is there anything to do, how many drain workers does it deserve, and is it time
to scale, to hand over, or to tell the gateways that the pipeline is saturated?

In-flight messages count as work: a worker may have died holding them, and they come back (or
reach the dead-letter queue) once their visibility timeout runs out.

The state machine calls it with a ``phase``: ``start`` (before any model is started),
``round`` (after a drain round, with the Map's outputs), ``in_flight`` (after waiting for
messages in flight) and ``after_release`` (the model stopped, the lock released). While the
model is up (round, in_flight) it also runs overload control (batchsight_pipeline.overload,
scaling the backend within MaxScaleUnits), reads the history's length (history.py) and asks for a
hand-over past HandOverEvents; and it writes the pipeline status the gateways read
(pipeline_status.py) whenever it knows the pipeline's state: while draining, or when idle.
"""
from __future__ import annotations

import dataclasses
import math
import time
from typing import Any

from aws_lambda_powertools import Logger

from batchsight_pipeline import history, pipeline_status
from batchsight_pipeline.aws import client
from batchsight_pipeline.backends import backend_from_settings
from batchsight_pipeline.metrics import load_worth_publishing, metrics, record_load
from batchsight_pipeline.overload import MAX_WORKERS, MESSAGES_PER_RECEIVE, Load, assess, workers_for
from batchsight_pipeline.routes import serving
from batchsight_pipeline.settings import Settings

logger = Logger(service="batchsight-check-work")
TALLY_FIELDS = ("processed", "anomalous", "poisoned", "retried")
STALLED_ROUNDS = 5  # rounds in a row in which every drain worker gave up: the drain is broken, stop
DRAINING = ("round", "in_flight")
_VISIBLE, _IN_FLIGHT = "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"


class DrainStalled(RuntimeError):
    """Every drain worker gave up (timeouts, throttling) round after round: stop the model.

    The state machine catches it by its class name (to StopModelAfterFailure).
    """


def queue_depth(queue_url: str) -> tuple[int, int]:
    """(visible, in flight) messages of a queue, as SQS approximates them."""
    attributes = client("sqs").get_queue_attributes(
        QueueUrl=queue_url, AttributeNames=[_VISIBLE, _IN_FLIGHT])["Attributes"]
    return int(attributes[_VISIBLE]), int(attributes[_IN_FLIGHT])  # missing: fail, never guess "no work"


def plan(visible: int, in_flight: int, settings: Settings, *, units: int = 1) -> dict[str, Any]:
    """No more workers than there are receive batches (idle workers only cost invocations), and
    no more than the units in use run (DrainWorkers each), unless each worker brings its own
    detector (``drain_target_seconds``, the lambda backend): then a backlog gets as many workers
    as judge it within that time, up to the Map's MaxConcurrency. Each image costs the same
    detector seconds on any worker; a worker adds only its cold start and its last empty receive."""
    batches = max(1, math.ceil(visible / MESSAGES_PER_RECEIVE))
    workers = min(workers_for(units, settings.drain_workers), batches)
    if settings.drain_target_seconds:
        wanted = math.ceil(visible / (settings.worker_tps * settings.drain_target_seconds))
        workers = max(workers, min(MAX_WORKERS, batches, wanted))
    return {"has_work": visible + in_flight > 0, "visible": visible, "in_flight": in_flight,
            "poll_seconds": settings.poll_seconds, "workers": list(range(workers))}


def tally(previous: dict[str, int] | None, drained: list[dict[str, int]] | None) -> dict[str, int]:
    """The execution's running totals: ASL cannot sum the Map's outputs, so this step does."""
    totals = {name: int((previous or {}).get(name, 0)) for name in TALLY_FIELDS}
    for outcome in drained or []:
        for name in TALLY_FIELDS:
            totals[name] += int(outcome.get(name, 0))
    return totals


def stalled(previous: int, drained: list[dict[str, Any]] | None) -> int:
    """Rounds in a row in which every worker gave up (the Map's Catch): 0 after any other round."""
    if drained and all(outcome.get("gave_up") for outcome in drained):
        return previous + 1
    return 0


def measure(event: dict[str, Any], settings: Settings, *, now: float, visible: int, in_flight: int,
            phase: str, max_units: int) -> Load:
    """The load now and the units it asks for (overload.assess); pure, for the cost model too."""
    drained = (event.get("drained") or []) if phase == "round" else []
    removed = sum(int(d.get("processed", 0)) + int(d.get("poisoned", 0)) for d in drained)
    previous = Load.from_dict(event.get("load")) if phase in DRAINING else None
    return assess(previous, now=now, visible=visible, in_flight=in_flight, removed=removed,
                  unit_tps=settings.detect_tps, drain_workers=settings.drain_workers,
                  max_units=min(settings.max_scale_units, max_units),
                  target_seconds=settings.backlog_target_seconds)


def overload(event: dict[str, Any], settings: Settings, *, now: float, visible: int, in_flight: int,
             phase: str) -> Load:
    """Measure the load; while draining, scale the backend to the units it asks for."""
    backend = backend_from_settings(settings) if phase in DRAINING else None
    load = measure(event, settings, now=now, visible=visible, in_flight=in_flight, phase=phase,
                   max_units=backend.max_units if backend else 1)
    previous = Load.from_dict(event.get("load"))
    if backend is not None and previous is not None and load.units != previous.units:
        applied = backend.scale(load.units)
        logger.info("scaled", extra={"units": applied, "asked": load.units, "from": previous.units,
                                     "arrival_per_minute": load.arrival_rate * 60})
        load = dataclasses.replace(load, units=applied)
    return load


def answer(event: dict[str, Any], settings: Settings, *, phase: str, visible: int, in_flight: int,
           load: Load, events: int) -> dict[str, Any]:
    """What the state machine gets back; pure (the cost model runs it on its virtual clock).

    While draining it stops a run that can no longer go on (DrainStalled, HistoryQuotaNear), and
    past HandOverEvents it asks for a hand-over: after the release only when work arrived."""
    stalls = stalled(int(event.get("stalled") or 0), event.get("drained")) if phase == "round" else 0
    if phase in DRAINING and events >= history.ceiling():
        raise history.HistoryQuotaNear(f"{events} history events and no successor took over; stopping")
    if phase in DRAINING and stalls >= STALLED_ROUNDS:
        raise DrainStalled(f"every drain worker gave up in {stalls} rounds in a row; stopping the model")
    due = events >= settings.hand_over_events and (visible > 0 if phase == "after_release" else phase in DRAINING)
    hand_over = due and visible + in_flight > 0
    execution = str(event.get("execution", ""))
    return {**plan(visible, in_flight, settings, units=load.units),
            "tally": tally(event.get("tally"), event.get("drained")), "load": load.to_dict(),
            "events": events, "stalled": stalls, "hand_over": hand_over,
            "successor": history.successor_name(execution) if hand_over else ""}


def publishes_load(event: dict[str, Any], settings: Settings, *, load: Load, phase: str) -> bool:
    """Whether this check publishes overload control's metrics (metrics.load_worth_publishing);
    pure, for the cost model too."""
    previous = Load.from_dict(event.get("load"))
    return phase in DRAINING and load_worth_publishing(scaling=settings.max_scale_units > 1, saturated=load.saturated,
                                                       was_saturated=bool(previous and previous.saturated))


def history_events(event: dict[str, Any], phase: str) -> int:
    """The execution's history so far: read, or estimated from the loop's shape when unreadable."""
    execution = str(event.get("execution", ""))
    events = history.history_length(execution, client("stepfunctions")) if phase != "start" else None
    if events is None:
        events = history.estimate(int(event.get("events") or 0), after=phase, workers=len(event.get("drained") or []))
    return events


def report(load: Load, settings: Settings, *, now: float, in_flight: int, execution: str, phase: str) -> None:
    """The status object for the gateways, when this check knows the pipeline's state."""
    if phase not in DRAINING and load.backlog:
        return  # this execution may never take the lock: the one draining speaks for the pipeline
    previous = pipeline_status.read(settings.final_bucket) if load.backlog else None
    status = pipeline_status.document(
        load, now=now, max_units=settings.max_scale_units, unit_tps=settings.detect_tps, in_flight=in_flight,
        queue_empty_at=pipeline_status.queue_empty_at(previous, now=now, backlog=load.backlog),
        execution=execution, idle=phase not in DRAINING)
    pipeline_status.write(settings.final_bucket, status)


@logger.inject_lambda_context
@metrics.log_metrics
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    with serving(event) as route:  # the execution's model route: its queue, its status object
        logger.append_keys(route=route)
        return check(event)


def check(event: dict[str, Any]) -> dict[str, Any]:
    """One check of the route's queue, for the phase the event names."""
    settings = Settings.from_env()
    execution, phase, now = str(event.get("execution", "")), str(event.get("phase") or "start"), time.time()
    visible, in_flight = queue_depth(settings.queue_url)
    load = overload(event, settings, now=now, visible=visible, in_flight=in_flight, phase=phase)
    events = history_events(event, phase)
    if publishes_load(event, settings, load=load, phase=phase):
        record_load(arrival_per_minute=load.arrival_rate * 60, units=load.units, overloaded=load.saturated,
                    drain_per_minute=(load.unit_rate or settings.detect_tps) * load.units * 60,
                    backlog_minutes=load.behind_seconds / 60, history_events=events)
    report(load, settings, now=now, in_flight=in_flight, execution=execution, phase=phase)
    result = answer(event, settings, phase=phase, visible=visible, in_flight=in_flight, load=load, events=events)
    logger.info("queue checked", extra={"execution": execution, "phase": phase, **result})
    return result
