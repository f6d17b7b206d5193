"""The two policies batchsight is compared with: always-on, and the AWS sample's hourly loop.

Neither has a gateway: images reach the queue as they are taken (S3 event notification to
SQS) and a Lambda event source mapping on the queue analyses them while the model is up.

The sample ("Batch Image Processing with Amazon Lookout for Vision", the seed) ran a state
machine every hour: if the queue had visible messages it called StartModel (a no-op when
already starting or hosted), then waited a fixed 20 minutes and asked again until the model
was HOSTED; it then enabled the event source mapping (or ended at once if another execution
had already enabled it) and waited 59 minutes; after each wait it checked the queue and
waited another 59 minutes while messages were visible, else disabled the mapping and
stopped the model. So every hosting lasts at least 20 + 59 = 79 minutes.

Both are charged the sample's mechanism (sample_charges.py) and the same gateway uploads; the
result pull is charged like every row's (result_pull.py).
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Generator, Sequence

from batchsight_pipeline.backends.base import HOSTED, STARTING
import batchsight_tools.costmodel.gateway_charges as gateway_charges
import batchsight_tools.costmodel.sample_charges as sample_charges
from batchsight_tools.costmodel.backends import PRESETS, BackendPreset
from batchsight_tools.costmodel.engine import Engine
from batchsight_tools.costmodel.images import DEFAULT_IMAGES, Images
from batchsight_tools.costmodel.model import ModelService, PolicyResult
from batchsight_tools.costmodel.services import Hosting, Queue, StartTimes
from batchsight_tools.costmodel.stack_shape import template_shape
from batchsight_tools.costmodel.trace import horizon as trace_horizon
from batchsight_tools.costmodel.usage import Usage

SEED_TRIGGER_SECONDS = 3600.0  # rate(1 hour)
SEED_READINESS_WAIT_SECONDS = 1200.0  # "Wait for the model to start"
SEED_KEEP_ALIVE_SECONDS = 3540.0  # "Keep Model running for 1 hr"
EVENT_SOURCE_CONCURRENCY = 5  # an SQS event source mapping starts with five concurrent batches
PICKUP_SECONDS = 1.0  # the mapping's long poll: a message stays visible about this long
TASK_SECONDS = 0.3


class EventSource:
    """A Lambda SQS event source mapping (batch size 1) that analyses messages while enabled."""

    def __init__(self, queue: Queue, rate: float) -> None:
        self.queue = queue
        self.rate = rate
        self.enabled = False
        self.free = 0.0
        self.enabled_at = 0.0
        self.enabled_seconds = 0.0  # how long its pollers have been polling

    def enable(self, now: float) -> None:
        self.enabled = True
        self.enabled_at = now
        self.free = max(self.free, now)

    def advance(self, now: float) -> None:
        """Process every message whose processing would have begun by ``now``."""
        while self.enabled and self.queue.pending:
            visible = self.queue.next_visible_at()
            assert visible is not None
            start = max(visible + PICKUP_SECONDS, self.free)
            if start > now:
                return
            self.free = self.queue.take(start, 1.0 / self.rate)

    def disable(self, now: float) -> None:
        self.advance(now)
        self.enabled = False
        self.enabled_seconds += now - self.enabled_at


def _queue(arrivals: Sequence[float]) -> Queue:
    queue = Queue()
    for index, t in enumerate(arrivals):
        queue.put(index, t)
    return queue


def _latencies(queue: Queue, arrivals: Sequence[float]) -> list[float]:
    completed = queue.done
    return [completed[i] - arrivals[i] for i in range(len(arrivals)) if i in completed]


def _charged(result: PolicyResult, usage: Usage, queue: Queue, arrivals: Sequence[float], *,
             service: ModelService, backend: BackendPreset, images: Images) -> PolicyResult:
    """The images' own charges (upload, notification, the mapping's call), and their times."""
    shape = template_shape()
    gateway_charges.uploaded(usage, len(arrivals))
    gateway_charges.notified_by_s3(usage, len(arrivals))
    sample_charges.images_judged(usage, len(queue.done), detect_seconds=service.detect_latency_seconds,
                                 backend=backend, images=images, shape=shape)
    result.usage = usage
    result.submitted = dict(enumerate(arrivals))  # uploaded as taken: awaited from then on
    result.stored = dict(queue.done)
    return result


def simulate_always_on(arrivals: Sequence[float], service: ModelService, *,
                       backend: BackendPreset = PRESETS["sagemaker"], images: Images = DEFAULT_IMAGES) -> PolicyResult:
    """The model hosted around the clock; billed for every hour of the trace's days."""
    queue = _queue(arrivals)
    source = EventSource(queue, service.throughput(EVENT_SOURCE_CONCURRENCY))
    source.enable(0.0)
    source.advance(float("inf"))
    horizon = trace_horizon(arrivals)  # an image in the last second is answered on the next day's bill
    usage = Usage()
    sample_charges.mapping_enabled(usage, horizon)
    result = PolicyResult("always-on", [(0.0, horizon)], _latencies(queue, arrivals), horizon)
    return _charged(result, usage, queue, arrivals, service=service, backend=backend, images=images)


def simulate_seed(arrivals: Sequence[float], service: ModelService, *, days_after: float = 2.0,
                  backend: BackendPreset = PRESETS["sagemaker"], images: Images = DEFAULT_IMAGES) -> PolicyResult:
    """The sample's hourly state machine on the same trace and the same start-time draws."""
    engine = Engine()
    queue = _queue(arrivals)
    source = EventSource(queue, service.throughput(EVENT_SOURCE_CONCURRENCY))
    hosting = Hosting(StartTimes(service.start_low_seconds, service.start_high_seconds, service.seed))
    ends: Counter[str] = Counter()  # executions by the state they ended in
    steps = Counter[str]()  # the states entered ("transitions") and the Lambda tasks among them
    running = 0

    def task() -> float:
        steps.update(transitions=2, tasks=1)  # a Task and the Choice on its answer
        return TASK_SECONDS

    def execution() -> Generator[float, None, str]:
        yield task()  # "Check SQS Queue"
        source.advance(engine.now)
        if queue.visible(engine.now) == 0:
            return "Finish (no images)"
        while True:
            yield task()  # "Start Model": DescribeModel, StartModel only when stopped
            status = hosting.describe(engine.now)[0]
            if status not in (HOSTED, STARTING):
                status = hosting.start(engine.now)
            if status == HOSTED:
                break
            steps.update(transitions=1)
            yield SEED_READINESS_WAIT_SECONDS
        yield task()  # "Enable SQS Trigger"
        if source.enabled:
            return "Finish (already running)"
        source.enable(engine.now)
        while True:
            steps.update(transitions=1)
            yield SEED_KEEP_ALIVE_SECONDS
            yield task()  # "Check Queue Again"
            source.advance(engine.now)
            if queue.visible(engine.now) == 0:
                break
        yield task()  # "Disable SQS Trigger"
        source.disable(engine.now)
        yield task()  # "Stop Model"
        hosting.stop(engine.now)
        return "Stop Model"

    def ended(end: str) -> None:
        nonlocal running
        ends[end] += 1
        steps.update(transitions=1)  # the Succeed state it ended in
        running -= 1

    def trigger() -> Generator[float, None, None]:
        nonlocal running
        while True:
            running += 1
            engine.spawn(execution(), done=ended)
            yield SEED_TRIGGER_SECONDS

    engine.spawn(trigger())
    horizon = trace_horizon(arrivals)
    complete = engine.run(until=lambda: queue.pending == 0 and running == 0
                          and hosting.status == "STOPPED",
                          limit=horizon + days_after * 86_400.0)
    result = PolicyResult("seed-hourly", list(hosting.intervals), _latencies(queue, arrivals), horizon,
                          starts=hosting.starts, executions=dict(ends))
    if not complete:
        result.notes.append("simulation stopped at its time limit")
    usage = Usage()
    sample_charges.mapping_enabled(usage, source.enabled_seconds)
    sample_charges.state_machine(usage, transitions=steps["transitions"], tasks=steps["tasks"], shape=template_shape())
    return _charged(result, usage, queue, arrivals, service=service, backend=backend, images=images)
