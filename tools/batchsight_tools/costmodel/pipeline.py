"""batchsight's own policy on the virtual clock: the edge's BatchPolicy, then the real ASL.

Each Task of cloud/statemachine/batch_pipeline.asl.json is answered by a simulated service
that calls the project's code where the project decides something: CheckWork's ``plan`` and
``tally``, the model backend contract (``ModelBackend.start/status/stop``, including its
start-timeout rule), the lock handler's answers (``LockLost`` on a lost renew). The queue,
the lock item and the model's hosting are simulated (services.py).
"""
from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Generator, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from batchsight_pipeline.backends.base import ModelState
from batchsight_pipeline.lock import LockLost
from batchsight_pipeline.settings import Settings
from batchsight_tools.costmodel.asl import Call, Outcome, StateMachine
from batchsight_tools.costmodel.edge import EdgeBatching, Submission, Uplink, gateway
from batchsight_tools.costmodel.engine import Engine, backend_clock
from batchsight_tools.costmodel.model import ModelService, PolicyResult
from batchsight_tools.costmodel.services import Hosting, Lock, Queue, SimulatedBackend, StartTimes
from batchsight_tools.costmodel.trace import horizon as trace_horizon
from batchsight_tools.localcloud.template import load_template
from batchsight_tools.stack import cloud_dir, function

RECEIVE_WAIT_SECONDS = 1.0  # the drain's long poll (WaitTimeSeconds=1)
SNS_PUBLISH = "arn:aws:states:::sns:publish"


@dataclass(frozen=True)
class CloudSettings:
    """The stack parameters (cloud/template.yaml) that shape cost and latency."""

    poll_seconds: int = 30
    start_timeout_seconds: int = 1800
    drain_workers: int = 2
    detect_concurrency: int = 4
    lock_lease_seconds: int = 900
    schedule_seconds: float = 3600.0  # ScheduleExpression rate(1 hour); 0 switches it off
    drain_timeout_seconds: float = 300.0  # the Drain function's Timeout
    task_seconds: float = 0.3  # one Lambda invoke, as seen by Step Functions

    def settings(self, service: ModelService) -> Settings:
        return Settings(queue_url="sim://queue", dead_letter_queue_url="sim://dead-letter",
                        source_bucket="sim-source", final_bucket="sim-final", backend="simulated",
                        poll_seconds=int(self.poll_seconds),
                        start_timeout_seconds=int(self.start_timeout_seconds),
                        drain_workers=int(self.drain_workers),
                        detect_concurrency=int(self.detect_concurrency),
                        detect_tps=float(service.detect_tps), lock_table="sim-lock")


@dataclass(frozen=True)
class OurPolicy:
    batching: EdgeBatching = field(default_factory=EdgeBatching)
    cloud: CloudSettings = field(default_factory=CloudSettings)
    uplink: Uplink = field(default_factory=Uplink)


@lru_cache(maxsize=1)
def template_cloud_settings() -> CloudSettings:
    """The stack as deployed with the template's defaults."""
    template = load_template()
    defaults = {name: p.get("Default") for name, p in template["Parameters"].items()}
    schedule = str(defaults.get("ScheduleExpression", "rate(1 hour)"))
    return CloudSettings(
        poll_seconds=int(defaults["PollSeconds"]),
        start_timeout_seconds=int(defaults["StartTimeoutSeconds"]),
        drain_workers=int(defaults["DrainWorkers"]),
        detect_concurrency=int(defaults["DetectConcurrency"]),
        lock_lease_seconds=int(defaults["LockLeaseSeconds"]),
        schedule_seconds=rate_seconds(schedule),
        drain_timeout_seconds=float(template["Resources"]["DrainFunction"]["Properties"]["Timeout"]))


def rate_seconds(expression: str) -> float:
    """'rate(1 hour)' -> 3600; a cron() schedule is not modelled."""
    if not expression.startswith("rate(") or not expression.endswith(")"):
        raise ValueError(f"schedule {expression!r}: only rate(...) expressions are modelled")
    value, unit = expression[5:-1].split()
    scale = {"minute": 60, "minutes": 60, "hour": 3600, "hours": 3600, "day": 86400, "days": 86400}
    return float(value) * scale[unit]


@lru_cache(maxsize=1)
def load_definition(path: Path | None = None) -> dict[str, Any]:
    """The state machine as deployed (the template's DefinitionUri), or the file given."""
    if path is None:
        machine = load_template()["Resources"]["BatchStateMachine"]["Properties"]
        path = cloud_dir() / machine["DefinitionUri"]
    return json.loads(path.read_text())


def worker_rate(cloud: CloudSettings, service: ModelService) -> float:
    """One drain worker's images per second: its share of DetectTps, or its threads' pace."""
    settings = cloud.settings(service)
    return min(settings.worker_tps, cloud.detect_concurrency / service.detect_latency_seconds)


class Pipeline:
    """The cloud stack on one engine: queue, lock, backend, and the state machine's services."""

    def __init__(self, engine: Engine, service: ModelService, cloud: CloudSettings, *,
                 definition: dict[str, Any] | None = None) -> None:
        self.engine = engine
        self.service = service
        self.cloud = cloud
        self.settings = cloud.settings(service)
        self.queue = Queue()
        self.lock = Lock(cloud.lock_lease_seconds)
        self.hosting = Hosting(StartTimes(service.start_low_seconds, service.start_high_seconds,
                                          service.seed), fails=service.fails)
        self.backend = SimulatedBackend(self.hosting, engine,
                                        start_timeout_seconds=cloud.start_timeout_seconds)
        self.machine = StateMachine(
            definition or load_definition(),
            {"CheckWorkFunctionArn": self._check_work, "ModelLockFunctionArn": self._lock,
             "ModelControlFunctionArn": self._model_control, "Map:DrainFunctionArn": self._drain,
             SNS_PUBLISH: lambda _payload: Call({}, cloud.task_seconds)},
            rng=random.Random(service.seed), clock=lambda: engine.now)
        self.running = 0
        self.outcomes: list[Outcome] = []

    # --- the Tasks' services ------------------------------------------------------------------

    def _call(self, output: Any) -> Call:
        return Call(output, self.cloud.task_seconds)

    def _check_work(self, payload: dict[str, Any]) -> Call:
        now = self.engine.now
        check_work = function("check_work")  # the function's own decisions, not a copy
        result = check_work.plan(self.queue.visible(now), self.queue.in_flight(now), self.settings)
        return self._call({**result, "tally": check_work.tally(payload.get("tally"), payload.get("drained"))})

    def _lock(self, payload: dict[str, Any]) -> Call:
        owner, action, now = str(payload["execution"]), payload.get("action"), self.engine.now
        if action == "acquire":
            held = self.lock.acquire(owner, now)
        elif action == "renew":
            held = self.lock.renew(owner, now)
        elif action == "release":
            held = not self.lock.release(owner)
        else:
            raise ValueError(f"unknown lock action {action!r}")
        if action == "renew" and not held:
            raise LockLost("the model lock was lost (lease expired and taken over)")
        return self._call({"held": held})

    def _model_control(self, payload: dict[str, Any]) -> Call:
        action = payload.get("action")
        if action == "start":
            state = self.backend.start(run_token=str(payload["execution"]))
        elif action == "status":
            state = self.backend.status(ModelState(**payload["model"]))
        elif action == "stop":
            state = self.backend.stop()
        else:
            raise ValueError(f"unknown model action {action!r}")
        return self._call(state.to_dict())

    def _drain(self, request: dict[str, Any]) -> Generator[float, None, list[dict[str, int]]]:
        """The Map's workers as one server at their combined rate, on the clock.

        Each worker receives until a long poll comes back empty or its Lambda time runs out;
        messages that become visible meanwhile (another batch) are drained too.
        """
        workers = len(request["items"])  # CheckWork sizes the Map within its MaxConcurrency
        if workers > int(request["max_concurrency"]):
            raise ValueError("more drain workers than the Map's MaxConcurrency")
        service_seconds = 1.0 / (workers * worker_rate(self.cloud, self.service))
        limit = self.cloud.drain_timeout_seconds - function("drain").SAFETY_MARGIN_MS / 1000.0
        yield self.cloud.task_seconds
        begin, count, queue = self.engine.now, 0, self.queue
        while self.engine.now - begin < limit:
            nxt = queue.next_visible_at()
            if nxt is not None and nxt <= self.engine.now:
                queue.take(self.engine.now, service_seconds)
                count += 1
                yield service_seconds
            elif nxt is not None and nxt <= self.engine.now + RECEIVE_WAIT_SECONDS:
                yield nxt - self.engine.now
            else:
                yield RECEIVE_WAIT_SECONDS  # the long poll comes back empty: the workers return
                nxt = queue.next_visible_at()
                if nxt is None or nxt > self.engine.now:
                    break
        shares = [count // workers + (1 if k < count % workers else 0) for k in range(workers)]
        return [{"processed": n, "anomalous": 0, "poisoned": 0, "retried": 0} for n in shares]

    # --- executions ---------------------------------------------------------------------------

    def start_execution(self, name: str, execution_input: dict[str, Any]) -> None:
        self.running += 1

        def finished(outcome: Outcome) -> None:
            self.running -= 1
            self.outcomes.append(outcome)

        self.engine.spawn(self.machine.run(execution_input, name=name), done=finished)


def simulate_ours(arrivals: Sequence[float], policy: OurPolicy, service: ModelService, *,
                  name: str = "batchsight", follow_on: bool = True,
                  days_after: float = 2.0) -> PolicyResult:
    """The trace's days of batchsight: the gateway's cuts, their executions, the schedule.

    ``follow_on`` is the component's ``batch.follow`` (on by default): the gateway's result
    pull tells the batching policy when the model is hosted.
    """
    engine = Engine()
    pipeline = Pipeline(engine, service, policy.cloud)
    state = {"submitted": 0, "started": 0, "gateway": True}

    def submit(sub: Submission) -> None:
        state["submitted"] += 1
        for image in sub.images:
            pipeline.queue.put(image, sub.visible_at)
        index = state["submitted"]

        def start() -> None:
            state["started"] += 1
            pipeline.start_execution(f"gateway-{index:05d}", {"v": 1, "trigger": "edge",
                                                              "image_count": len(sub.images)})
        engine.at(sub.execution_at, start)

    engine.spawn(gateway(lambda: engine.now, arrivals, policy.batching, policy.uplink, submit,
                         result_at=pipeline.queue.completed_at if follow_on else None),
                 done=lambda _: state.__setitem__("gateway", False))
    if policy.cloud.schedule_seconds > 0:
        engine.spawn(_schedule(pipeline, policy.cloud.schedule_seconds))

    def settled() -> bool:
        return (not state["gateway"] and state["started"] == state["submitted"]
                and pipeline.queue.pending == 0 and pipeline.running == 0
                and pipeline.hosting.status == "STOPPED")

    horizon = trace_horizon(arrivals) if arrivals else 86_400.0
    with backend_clock(engine):
        complete = engine.run(until=settled, limit=horizon + days_after * 86_400.0)
    return _result(name, arrivals, pipeline, horizon, complete)


def _schedule(pipeline: Pipeline, period: float) -> Generator[float, None, None]:
    """The EventBridge safety net: an execution every period, from 00:00."""
    tick = 0
    while True:
        pipeline.start_execution(f"schedule-{tick:05d}", {"v": 1, "trigger": "schedule"})
        tick += 1
        yield period


def _result(name: str, arrivals: Sequence[float], pipeline: Pipeline, horizon: float,
            complete: bool) -> PolicyResult:
    completed = pipeline.queue.done
    latencies = [completed[i] - arrivals[i] for i in range(len(arrivals)) if i in completed]
    intervals = list(pipeline.hosting.intervals)
    notes = []
    if pipeline.hosting.status != "STOPPED":
        intervals.append((pipeline.hosting.opened_at, pipeline.engine.now))
        notes.append("the model was still hosted when the simulation ended")
    if len(latencies) < len(arrivals):
        notes.append(f"{len(arrivals) - len(latencies)} images never got a result")
    if pipeline.lock.takeovers:
        notes.append(f"{pipeline.lock.takeovers} lock takeovers after an expired lease")
    if not complete:
        notes.append("simulation stopped at its time limit")
    ends = Counter(o.end_state for o in pipeline.outcomes)
    failed = {state: n for state, n in ends.items()
              if any(o.status == "FAILED" for o in pipeline.outcomes if o.end_state == state)}
    if failed:
        notes.append("failed executions: " + ", ".join(f"{n} {state}" for state, n in sorted(failed.items())))
    return PolicyResult(name, intervals, latencies, horizon, starts=pipeline.hosting.starts,
                        executions=dict(ends), notes=notes)

