"""Pipeline metrics in CloudWatch embedded metric format (EMF), written with Powertools.

Each handler is wrapped in ``@metrics.log_metrics`` and records what it saw; the metric sets
are printed to stdout as EMF once, at the end of the invocation (CloudWatch Logs turns them
into metrics in the ``batchsight`` namespace, ``POWERTOOLS_METRICS_NAMESPACE`` in the template).

A custom metric is billed for every hour it is published in (per name and dimension set), and
CloudWatch publishes the queues', executions' and functions' own metrics for free. So only
what no AWS metric says is published, and only when it says something:

- per ``site``/``line``: ``ImagesProcessed`` and ``Anomalies`` (no pipeline total: the dashboard
  sums the lines; the anomaly rate is metric math);
- ``ImagesRetried``, only when a drain retried images;
- for backends billed while hosted (``idle_cost``): ``ModelStarts``, ``ModelStops``,
  ``HostedModelMinutes`` and ``HostedModelAgeMinutes``; with nothing hosted (``lambda``, a
  serverless endpoint) an execution's own time says the same (Step Functions ExecutionTime);
- overload control's ``ScaleUnits``, ``Overloaded``, ``ArrivalRate``, ``DrainRate``,
  ``BacklogMinutes``, ``HistoryEvents``: while draining with ``MaxScaleUnits`` above 1, else only
  while saturated and at the check that sees it recover (the 0 that sets the alarm back to OK);
- ``HandOvers``, at each hand-over.

The queues' depths, the dead letters, the arrivals and deletes are AWS/SQS metrics
(ApproximateNumberOfMessagesVisible/NotVisible, NumberOfMessagesSent/Deleted,
ApproximateAgeOfOldestMessage); failures are AWS/States and AWS/Lambda metrics.

EMF dimensions belong to a whole metric set, not to one metric, so every dimension
combination is a set of its own (one EMF document each): a drain that processed images of
two lines prints two documents.

Powertools' ``Metrics`` keeps its data in class attributes shared by every instance in the
process. On Lambda one process serves one invocation at a time, but the local emulation runs
all the stack's functions in one process (drain workers in parallel threads), so each
invocation here gets its own ``EphemeralMetrics`` per dimension set. A metric that cannot be
published is logged, never raised: metrics must not fail a batch and keep the model hosted.
The cost model calls the same ``record_*`` functions inside ``metrics.collecting()`` to count
the metrics a simulated day publishes.
"""
from __future__ import annotations

import contextvars
import functools
import os
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime, UTC
from typing import Any, TypeVar

from aws_lambda_powertools import Logger
from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit

logger = Logger(service="batchsight-metrics")

NAMESPACE = "batchsight"

# Per site/line: from the drain.
IMAGES_PROCESSED = "ImagesProcessed"
ANOMALIES = "Anomalies"
# Pipeline: from the drain, when it retried images.
IMAGES_RETRIED = "ImagesRetried"
# Pipeline: from model control (and the drain, for the age while hosted).
MODEL_STARTS = "ModelStarts"
MODEL_STOPS = "ModelStops"
HOSTED_MODEL_MINUTES = "HostedModelMinutes"
HOSTED_MODEL_AGE_MINUTES = "HostedModelAgeMinutes"
# Pipeline: from check work, while draining and scaling or saturated (overload.py, history.py).
ARRIVAL_RATE = "ArrivalRate"  # images per minute
DRAIN_RATE = "DrainRate"  # images per minute the units in use drain
SCALE_UNITS = "ScaleUnits"
OVERLOADED = "Overloaded"  # 1 while saturated at the ceiling, else 0
BACKLOG_MINUTES = "BacklogMinutes"  # until the backlog clears at the current rates
HISTORY_EVENTS = "HistoryEvents"  # the execution's history so far
# Pipeline: from the model lock.
HAND_OVERS = "HandOvers"

# CloudWatch has no minute unit; the metric names say "Minutes".
MINUTES = MetricUnit.NoUnit

Handler = TypeVar("Handler", bound=Callable[..., Any])


def namespace() -> str:
    return os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "").strip() or NAMESPACE


class InvocationMetrics:
    """The metric sets of one invocation, one per dimension combination (thread-safe)."""

    def __init__(self, namespace_: str) -> None:
        self.namespace = namespace_
        self._sets: dict[tuple[tuple[str, str], ...], EphemeralMetrics] = {}
        self._lock = threading.Lock()

    def add(self, name: str, unit: MetricUnit, value: float,
            dimensions: Mapping[str, str] | None = None) -> None:
        key = tuple((str(k), str(v)) for k, v in (dimensions or {}).items())
        with self._lock:
            metric_set = self._sets.get(key)
            if metric_set is None:
                # service="" pins the dimension sets: POWERTOOLS_SERVICE_NAME would otherwise add a
                # "service" dimension, and the template's alarms match dimensions exactly.
                metric_set = EphemeralMetrics(namespace=self.namespace, service="")
                for dimension, dimension_value in key:  # one by one: Dimensions [[site, line]], no total
                    metric_set.add_dimension(name=dimension, value=dimension_value)
                self._sets[key] = metric_set
            metric_set.add_metric(name=name, unit=unit, value=value)

    def identities(self) -> set[str]:
        """Each metric recorded, as CloudWatch bills it: its name with its dimensions."""
        with self._lock:
            return {name + "".join(f"[{k}={v}]" for k, v in key)
                    for key, metric_set in self._sets.items() for name in metric_set.metric_set}

    def flush(self) -> None:
        with self._lock:
            for metric_set in self._sets.values():
                if metric_set.metric_set:
                    metric_set.flush_metrics()
            self._sets.clear()


class PipelineMetrics:
    """``@metrics.log_metrics`` on a handler; ``metrics.add(...)`` inside it."""

    def __init__(self) -> None:
        self._current: contextvars.ContextVar[InvocationMetrics | None] = contextvars.ContextVar(
            "batchsight_metrics", default=None)

    def log_metrics(self, handler: Handler) -> Handler:
        """Collect the invocation's metrics and print them as EMF when it ends (also on errors)."""

        @functools.wraps(handler)
        def wrapper(event: Any, context: Any, *args: Any, **kwargs: Any) -> Any:
            invocation = InvocationMetrics(namespace())
            token = self._current.set(invocation)
            try:
                return handler(event, context, *args, **kwargs)
            finally:
                self._current.reset(token)
                try:
                    invocation.flush()
                except Exception:  # noqa: BLE001 - a metric never fails the batch
                    logger.exception("metrics could not be published")

        return wrapper  # type: ignore[return-value]

    @contextmanager
    def collecting(self) -> Iterator[InvocationMetrics]:
        """Record into an invocation that is never printed: what the ``record_*`` calls publish."""
        invocation = InvocationMetrics(namespace())
        token = self._current.set(invocation)
        try:
            yield invocation
        finally:
            self._current.reset(token)

    def add(self, name: str, unit: MetricUnit, value: float,
            dimensions: Mapping[str, str] | None = None) -> None:
        invocation = self._current.get()
        if invocation is None:
            logger.warning("metric recorded outside @metrics.log_metrics, dropped", extra={"metric": name})
            return
        try:
            invocation.add(name, unit, value, dimensions)
        except Exception:  # noqa: BLE001 - a metric never fails the batch
            logger.exception("metric could not be recorded", extra={"metric": name})


metrics = PipelineMetrics()


class LineTally:
    """Images processed and anomalous per (site, line); drain worker threads record into it."""

    def __init__(self) -> None:
        self._counts: dict[tuple[str, str], list[int]] = {}
        self._lock = threading.Lock()

    def record(self, site: str, line: str, anomalous: bool) -> None:
        with self._lock:
            counts = self._counts.setdefault((site, line), [0, 0])
            counts[0] += 1
            counts[1] += int(anomalous)

    def items(self) -> list[tuple[str, str, int, int]]:
        with self._lock:
            return [(site, line, n, a) for (site, line), (n, a) in sorted(self._counts.items())]


def minutes_since(started_at: Any, now: datetime | None = None) -> float | None:
    """Minutes from an ISO 8601 time (a ModelState's started_at) to now; None when unknown."""
    if not isinstance(started_at, str) or not started_at:
        return None
    try:
        start = datetime.fromisoformat(started_at.replace("Z", "+00:00"))
    except ValueError:
        return None
    if start.tzinfo is None:
        start = start.replace(tzinfo=UTC)
    return max(0.0, ((now or datetime.now(UTC)) - start).total_seconds() / 60)


def _started_at(model: Any) -> Any:
    return model.get("started_at") if isinstance(model, Mapping) else None


def record_drain(lines: LineTally, *, retried: int, model: Any = None) -> None:
    """A drain invocation: images and anomalies per line, retries when there were any, and the
    model's age when the caller passes the state of a model billed while hosted."""
    for site, line, processed, anomalous in lines.items():
        dimensions = {"site": site, "line": line}
        metrics.add(IMAGES_PROCESSED, MetricUnit.Count, processed, dimensions)
        metrics.add(ANOMALIES, MetricUnit.Count, anomalous, dimensions)
    if retried:
        metrics.add(IMAGES_RETRIED, MetricUnit.Count, retried)
    age = minutes_since(_started_at(model))
    if age is not None:  # the drain only runs while the model is hosted
        metrics.add(HOSTED_MODEL_AGE_MINUTES, MINUTES, age)


def record_model(action: Any, status: str, previous: Any = None) -> None:
    """Model control of a model billed while hosted: starts, stops, the age while starting or
    hosted, hosted minutes on a stop.

    ``previous`` is the ModelState the state machine passed in: StopModel passes the hosted
    state (with started_at), StopModelAfterFailure passes none, so its minutes are unknown.
    """
    if action == "start":
        metrics.add(MODEL_STARTS, MetricUnit.Count, 1)
    elif action == "status":
        age = minutes_since(_started_at(previous))
        if age is not None and status in ("STARTING", "HOSTED"):
            metrics.add(HOSTED_MODEL_AGE_MINUTES, MINUTES, age)
    elif action == "stop":
        metrics.add(MODEL_STOPS, MetricUnit.Count, 1)
        hosted = minutes_since(_started_at(previous))
        if hosted is not None:
            metrics.add(HOSTED_MODEL_MINUTES, MINUTES, hosted)


def load_worth_publishing(*, scaling: bool, saturated: bool, was_saturated: bool) -> bool:
    """Overload control's metrics say something while it can scale (MaxScaleUnits above 1), and
    otherwise only while saturated and at the check that sees it recover: PipelineOverloadedAlarm
    keeps its state through missing data, so that 0 is what sets it back to OK."""
    return scaling or saturated or was_saturated


def record_load(*, arrival_per_minute: float, drain_per_minute: float, units: int, overloaded: bool,
                backlog_minutes: float, history_events: int) -> None:
    """Check work while the model is up: the rates, the scale, saturation, the history's length."""
    metrics.add(ARRIVAL_RATE, MetricUnit.Count, arrival_per_minute)
    metrics.add(DRAIN_RATE, MetricUnit.Count, drain_per_minute)
    metrics.add(SCALE_UNITS, MetricUnit.Count, units)
    metrics.add(OVERLOADED, MetricUnit.Count, int(overloaded))
    metrics.add(BACKLOG_MINUTES, MINUTES, backlog_minutes)
    metrics.add(HISTORY_EVENTS, MetricUnit.Count, history_events)

