"""batchsight's own policy on the virtual clock: the edge's BatchPolicy, then the real ASL.

Each Task of cloud/statemachine/batch_pipeline.asl.json is answered by a simulated service
that calls the project's code where the project decides something: CheckWork's ``plan`` and
``tally``, the model backend contract (``ModelBackend.start/status/stop``, including its
start-timeout rule), the lock handler's answers (``LockLost`` on a lost renew). The queue,
the lock item and the model's hosting are simulated (services.py). Every call is charged as
it is made (stack_charges.py: the functions; gateway_charges.py: the gateway's uploads), and
each execution's state transitions when it ends.
"""
from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from batchsight_pipeline import history
from batchsight_pipeline.backends.base import HOSTED, ModelState
from batchsight_pipeline.lock import LockLost
from batchsight_pipeline.settings import Settings
import batchsight_tools.costmodel.gateway_charges as gateway_charges
import batchsight_tools.costmodel.result_pull as result_pull
from batchsight_tools.costmodel.asl import Call, Outcome, StateMachine
from batchsight_tools.costmodel.backends import PRESETS, BackendPreset
from batchsight_tools.costmodel.edge import EdgeBatching, Submission, Uplink, gateway
from batchsight_tools.costmodel.engine import Engine, backend_clock
from batchsight_tools.costmodel.images import DEFAULT_IMAGES, Images
from batchsight_tools.costmodel.model import ModelService, PolicyResult
from batchsight_tools.costmodel.result_pull import PullSettings
from batchsight_tools.costmodel.services import Hosting, Lock, Queue, SimulatedBackend, StartTimes
from batchsight_tools.costmodel.stack_charges import StackMeter
from batchsight_tools.costmodel.stack_shape import StackShape, parameter_defaults, rate_seconds, template_shape
from batchsight_tools.costmodel.trace import horizon as trace_horizon
from batchsight_tools.localcloud.template import load_template
from batchsight_tools.stack import cloud_dir, function

RECEIVE_WAIT_SECONDS = 1.0  # the drain's long poll (WaitTimeSeconds=1)
SNS_PUBLISH = "arn:aws:states:::sns:publish"
SIMULATED_MAX_UNITS = 64  # the backend's own limit (ModelBackend.max_units): MaxScaleUnits decides


@dataclass(frozen=True)
class Check:
    """One CheckWork as the simulation saw it: when, the backlog, the units, saturation, and whether
    it ran while draining (only those emit the load metrics, ``Overloaded`` among them)."""

    at: float
    backlog: int
    units: int
    saturated: bool
    draining: bool


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
    max_scale_units: int = 1  # MaxScaleUnits: overload control's ceiling
    drain_target_seconds: float = 0.0  # DRAIN_TARGET_SECONDS: DrainTargetSeconds with lambda, else 0

    def settings(self, service: ModelService) -> Settings:
        return Settings(queue_url="sim://queue", dead_letter_queue_url="sim://dead-letter",
                        source_bucket="sim-source", final_bucket="sim-final", backend="simulated",
                        poll_seconds=int(self.poll_seconds),
                        start_timeout_seconds=int(self.start_timeout_seconds),
                        drain_workers=int(self.drain_workers),
                        detect_concurrency=int(self.detect_concurrency),
                        detect_tps=float(service.detect_tps), lock_table="sim-lock",
                        max_scale_units=int(self.max_scale_units),
                        drain_target_seconds=float(self.drain_target_seconds))


@dataclass(frozen=True)
class OurPolicy:
    batching: EdgeBatching = field(default_factory=EdgeBatching)
    cloud: CloudSettings = field(default_factory=CloudSettings)
    uplink: Uplink = field(default_factory=Uplink)
    results: PullSettings = field(default_factory=PullSettings)


@lru_cache(maxsize=1)
def template_cloud_settings() -> CloudSettings:
    """The stack as deployed with the template's defaults."""
    template = load_template()
    defaults = parameter_defaults(template)
    schedule = str(defaults.get("ScheduleExpression", "rate(1 hour)"))
    return CloudSettings(
        poll_seconds=int(defaults["PollSeconds"]),
        start_timeout_seconds=int(defaults["StartTimeoutSeconds"]),
        drain_workers=int(defaults["DrainWorkers"]),
        detect_concurrency=int(defaults["DetectConcurrency"]),
        lock_lease_seconds=int(defaults["LockLeaseSeconds"]),
        max_scale_units=int(defaults["MaxScaleUnits"]),
        schedule_seconds=rate_seconds(schedule),
        drain_timeout_seconds=float(template["Resources"]["DrainFunction"]["Properties"]["Timeout"]))


@lru_cache(maxsize=1)
def template_drain_target_seconds() -> float:
    """DrainTargetSeconds as the template's defaults give it to a stack with the lambda backend."""
    return float(parameter_defaults(load_template())["DrainTargetSeconds"])


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
                 definition: dict[str, Any] | None = None, meter: StackMeter | None = None,
                 gateways: int = 0) -> None:
        self.engine = engine
        self.gateways = gateways  # result queues a hosting is announced to (hosting_notice.py); 0: none
        self.announced: list[tuple[float, str]] = []  # when each notice reaches the queues, and its execution
        self.service = service
        self.cloud = cloud
        self.settings = cloud.settings(service)
        self.meter = meter or StackMeter(PRESETS["sagemaker"], DEFAULT_IMAGES, template_shape())
        self.check_work = function("check_work")  # the function's own decisions, not a copy
        self.drain_limit = cloud.drain_timeout_seconds - function("drain").SAFETY_MARGIN_MS / 1000.0
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
             SNS_PUBLISH: self._notify},
            rng=random.Random(service.seed), clock=lambda: engine.now)
        self.running = 0
        self.outcomes: list[Outcome] = []
        self.checks: list[Check] = []  # what each CheckWork saw (the week's backlog, scale, alarms)

    # --- the Tasks' services ------------------------------------------------------------------

    def _call(self, output: Any, function_name: str, action: str = "") -> Call:
        """A Lambda Task's answer after its invocation (and the cold start it may have waited)."""
        cold = self.meter.call(function_name, self.engine.now, action=action)
        return Call(output, self.cloud.task_seconds + cold)

    def _check_work(self, payload: dict[str, Any]) -> Call:
        """The function's own answer; the history's length as it estimates one it cannot read."""
        now, phase = self.engine.now, str(payload.get("phase") or "start")
        visible, in_flight = self.queue.visible(now), self.queue.in_flight(now)
        load = self.check_work.measure(payload, self.settings, now=now, visible=visible, in_flight=in_flight,
                                       phase=phase, max_units=SIMULATED_MAX_UNITS)
        events = history.estimate(int(payload.get("events") or 0), after=phase,
                                       workers=len(payload.get("drained") or []))
        result = self.check_work.answer(payload, self.settings, phase=phase, visible=visible,
                                        in_flight=in_flight, load=load, events=events)
        self.checks.append(Check(now, visible + in_flight, load.units, load.saturated,
                                 draining=phase in self.check_work.DRAINING))
        call = self._call(result, "check_work")
        self.meter.status_reported(now, draining=phase in self.check_work.DRAINING, backlog=visible + in_flight,
                                   load_published=self.check_work.publishes_load(payload, self.settings, load=load,
                                                                                 phase=phase))
        return call

    def _notify(self, _payload: Any) -> Call:
        self.meter.notified()
        return Call({}, self.cloud.task_seconds)

    def _lock(self, payload: dict[str, Any]) -> Call:
        owner, action, now = str(payload["execution"]), payload.get("action"), self.engine.now
        if action == "acquire":
            held = self.lock.acquire(owner, now)
        elif action == "renew":
            held = self.lock.renew(owner, now)
        elif action == "release":
            held = not self.lock.release(owner)
        elif action == "takeover":
            held = self.lock.renew(owner, now)
        elif action in ("handover", "continue"):
            return self._call(self._hand_over(owner, payload), "model_lock")
        else:
            raise ValueError(f"unknown lock action {action!r}")
        if action == "renew" and not held:
            self.meter.call("model_lock", now)
            raise LockLost("the model lock was lost (lease expired and taken over)")
        return self._call({"held": held}, "model_lock")

    def _hand_over(self, owner: str, payload: dict[str, Any]) -> dict[str, Any]:
        """Continue-as-new, as the lock function does it: the lock (when held) and the model pass
        to the successor, started here on the same engine."""
        lock_function, name = function("model_lock"), history.successor_name(owner)
        if payload.get("action") == "handover":
            self.lock.hand_over(owner, history.successor_arn(owner), self.engine.now)
            successor_input = lock_function.successor_input(payload)
        else:
            successor_input = {"v": 1, "trigger": "continue"}
        self.start_execution(name, successor_input)
        self.meter.handed_over(self.engine.now)
        return {"handed_over": True, "successor": name}

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
        call = self._call(state.to_dict(), "model_control", str(action))
        if self.gateways and self.meter.preset.hosted and action in ("start", "status") and state.status == HOSTED:
            name = str(payload["execution"]).rsplit(":", 1)[-1]  # ModelControl announces as it returns
            self.announced.append((self.engine.now + call.seconds, name))
            result_pull.charge_hosting_notice(self.meter.usage, self.gateways)
        return call

    def _drain(self, request: dict[str, Any]) -> Generator[float, None, list[dict[str, int]]]:
        """The Map's workers as one server at their combined rate, on the clock.

        Each worker receives until a long poll comes back empty or its Lambda time runs out;
        messages that become visible meanwhile (another batch) are drained too.
        """
        workers = len(request["items"])  # CheckWork sizes the Map within its MaxConcurrency
        if workers > int(request["max_concurrency"]):
            raise ValueError("more drain workers than the Map's MaxConcurrency")
        service_seconds = 1.0 / (workers * worker_rate(self.cloud, self.service))
        wait = self.meter.drain_started(self.engine.now + self.cloud.task_seconds, workers)
        yield self.cloud.task_seconds + wait
        begin, queue, judged = self.engine.now, self.queue, []
        last_done = begin
        while self.engine.now - begin < self.drain_limit:
            nxt = queue.next_visible_at()
            if nxt is not None and nxt <= self.engine.now:
                judged.append(queue.images[len(queue.started)])
                last_done = queue.take(self.engine.now, service_seconds)
                yield service_seconds
            elif nxt is not None and nxt <= self.engine.now + RECEIVE_WAIT_SECONDS:
                yield nxt - self.engine.now
            else:
                yield RECEIVE_WAIT_SECONDS  # the long poll comes back empty: the workers return
                nxt = queue.next_visible_at()
                if nxt is None or nxt > self.engine.now:
                    break
        # drain(): a long poll runs while the last images are in flight, then the empty one that ends it
        in_flight_poll = max(0.0, RECEIVE_WAIT_SECONDS - (last_done - begin)) if judged else 0.0
        if in_flight_poll:
            yield in_flight_poll
        self.meter.drain_finished(self.engine.now, workers, seconds=self.engine.now - begin + wait, images=judged)
        return _shares(judged, workers, self.meter.images)

    # --- executions ---------------------------------------------------------------------------

    def start_execution(self, name: str, execution_input: dict[str, Any]) -> None:
        self.running += 1

        def finished(outcome: Outcome) -> None:
            self.running -= 1
            self.outcomes.append(outcome)
            self.meter.execution(outcome.transitions)

        self.engine.spawn(self.machine.run(execution_input, name=name), done=finished)


def simulate_ours(arrivals: Sequence[float], policy: OurPolicy, service: ModelService, *,
                  name: str = "batchsight", follow_on: bool | None = None, days_after: float = 2.0,
                  backend: BackendPreset | None = None, images: Images = DEFAULT_IMAGES,
                  shape: StackShape | None = None, drain_cold_seconds: float | None = None,
                  watch: Callable[[Pipeline], None] | None = None, gateways: int = 1) -> PolicyResult:
    """The trace's days of batchsight: the gateways' cuts, their executions, the schedule.

    ``follow_on`` overrides the component's ``batch.follow`` (``policy.batching.follow``): the
    gateway's result pull, and with results pushed the pipeline's hosting notices, tell the
    batching policy when the model is hosted. ``backend`` (the sagemaker preset unless given)
    decides what each call is charged; ``shape`` is the stack's function sizes (the template's
    unless given); ``watch`` is handed the pipeline before the run (the week's figures read its
    executions and checks afterwards). ``gateways``: the trace split over that many gateways of
    one site (image by image, in turn), each with the same batch settings.
    """
    engine = Engine()
    meter = StackMeter(backend or PRESETS["sagemaker"], images, shape or template_shape(),
                       drain_cold_seconds=drain_cold_seconds)
    follow = policy.batching.follow if follow_on is None else follow_on
    pipeline = Pipeline(engine, service, policy.cloud, meter=meter,
                        gateways=gateways if follow and policy.results.push else 0)
    if watch is not None:
        watch(pipeline)
    state = {"submitted": 0, "started": 0, "gateways": gateways}
    submitted: dict[int, float] = {}

    def submit(sub: Submission) -> str:
        state["submitted"] += 1
        for image in sub.images:
            pipeline.queue.put(image, sub.visible_at)
            submitted[image] = sub.execution_at
        gateway_charges.uploaded(meter.usage, len(sub.images))
        gateway_charges.enqueued(meter.usage, len(sub.images))
        index = state["submitted"]

        name = f"gateway-{index:05d}"

        def start() -> None:
            state["started"] += 1
            pipeline.start_execution(name, {"v": 1, "trigger": "edge", "image_count": len(sub.images)})
        engine.at(sub.execution_at, start)
        return name

    for ids in (range(k, len(arrivals), gateways) for k in range(gateways)):
        engine.spawn(gateway(lambda: engine.now, [arrivals[i] for i in ids], policy.batching, policy.uplink, submit,
                             result_at=pipeline.queue.completed_at if follow else None,
                             results_poll_seconds=policy.results.poll_seconds, ids=ids,
                             announced=pipeline.announced if pipeline.gateways else None),
                     done=lambda _: state.__setitem__("gateways", state["gateways"] - 1))
    if policy.cloud.schedule_seconds > 0:
        engine.spawn(_schedule(pipeline, policy.cloud.schedule_seconds))

    def settled() -> bool:
        return (not state["gateways"] and state["started"] == state["submitted"]
                and pipeline.queue.pending == 0 and pipeline.running == 0
                and pipeline.hosting.status == "STOPPED")

    horizon = trace_horizon(arrivals) if arrivals else 86_400.0
    with backend_clock(engine):
        complete = engine.run(until=settled, limit=horizon + days_after * 86_400.0)
    result = _result(name, arrivals, pipeline, horizon, complete)
    result.submitted = submitted
    return result


def _shares(judged: list[int], workers: int, images: Images) -> list[dict[str, int]]:
    """The Map's outputs: the images split across the workers, with their anomalies."""
    shares = [judged[k::workers] for k in range(workers)]
    return [{"processed": len(share), "anomalous": sum(1 for i in share if images.anomalous(i)),
             "poisoned": 0, "retried": 0} for share in shares]


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
                        executions=dict(ends), notes=notes, usage=pipeline.meter.usage,
                        metric_hours=pipeline.meter.metric_hours, stored=dict(completed))

