"""What our stack's functions are billed for each call, as the simulation makes the calls.

Durations and log sizes of the small functions are estimates (the AWS calls each makes, tens of
milliseconds each from Lambda, and Powertools' JSON logs); the drain's duration comes from the
simulation. The requests are read from the code:

- CheckWork: GetQueueAttributes on the image queue (the queues' depths are SQS's own metrics); the pipeline
  status for the gateways (a PUT when it speaks for the pipeline, a GET of the last one first
  when images wait); GetExecutionHistory while draining (no charge of its own).
- ModelLock: one conditional DynamoDB write (PutItem, UpdateItem or DeleteItem); a hand-over's
  StartExecution has no charge of its own (its transitions do).
- ModelControl's stop renews the lock first: one conditional DynamoDB write.
- ModelControl, ``lambda`` backend: a start GETs the model index, and in a cold function the
  package.json and the model file (model_store keeps a verified version for the warm function's
  life); status and stop call nothing.
- Drain, ``lambda`` backend: a cold function GETs the package.json and the model file once.
- Drain, per image: GET the image, PUT the result, (anomalous: PUT the mask), COPY the image to the
  final bucket, DELETE it (free); per worker one ReceiveMessage and one DeleteMessageBatch per 10
  images, an empty long poll while the last images are in flight and the empty one that ends it.
- Every function's EMF metrics are custom metrics billed for the hours they are published in:
  each call runs the function's own ``record_*`` of batchsight_pipeline.metrics (inside
  ``metrics.collecting()``, nothing printed) and the hour of each metric it publishes is recorded.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from functools import lru_cache

from batchsight_pipeline import metrics as emf
import batchsight_tools.costmodel.meters as meters
from batchsight_tools.costmodel.backends import ENDPOINT, FUNCTION, ONE_VCPU_MB, BackendPreset
from batchsight_tools.costmodel.images import Images
from batchsight_tools.costmodel.stack_shape import StackShape
from batchsight_tools.costmodel.usage import Usage
from batchsight_tools.costmodel.warmth import WarmPool

SMALL_FUNCTION_SECONDS = {"check_work": 0.08, "model_lock": 0.04, "reaper": 0.08}
MODEL_CONTROL_SECONDS = {FUNCTION: {"start": 0.25, "status": 0.01, "stop": 0.01},
                         ENDPOINT: {"start": 0.08, "status": 0.01, "stop": 0.01},
                         "hosted": {"start": 0.2, "status": 0.08, "stop": 0.15}}
LOG_BYTES = {"check_work": 1300, "model_lock": 700, "model_control": 1200, "drain": 1900, "reaper": 350}
MESSAGE_BYTES = 500  # one SQS message (contracts: the image message)
MESSAGES_PER_RECEIVE = 10
EMPTY_RECEIVES = 2  # per worker: the long poll while the last images are in flight, and the last one
HOUR = 3600.0
# A hosted model's state as StopModel and a readiness poll pass it (started_at dates the hosting).
HOSTED_STATE = {"status": "HOSTED", "started_at": "2026-01-05T00:00:00+00:00"}


class StackMeter:
    """Charges our functions' calls to a Usage and keeps each function's warm environments."""

    def __init__(self, preset: BackendPreset, images: Images, shape: StackShape, *, lines: int = 1,
                 drain_cold_seconds: float | None = None) -> None:
        self.preset, self.images, self.shape, self.lines = preset, images, shape, lines
        self.drain_cold_seconds = preset.drain_cold_seconds if drain_cold_seconds is None else drain_cold_seconds
        self.usage = Usage()
        self.metric_hours: set[tuple[int, str]] = set()  # (hour of the trace, metric identity)
        self.pools: dict[str, WarmPool] = {}
        self.endpoint = WarmPool()  # the serverless endpoint's warm capacity
        self.small_cold_seconds = 0.8  # python, boto3 and Powertools (estimate)

    # --- the small functions ----------------------------------------------------------------------

    def call(self, function: str, now: float, *, action: str = "") -> float:
        """One invocation at ``now``; returns how long its cold start (if any) delayed it."""
        if function == "model_control":
            seconds = MODEL_CONTROL_SECONDS.get(self.preset.kind, MODEL_CONTROL_SECONDS["hosted"])[action]
        else:
            seconds = SMALL_FUNCTION_SECONDS[function]
        cold = self._pool(function).take(now)
        init = cold * self.small_cold_seconds
        self._pool(function).give_back(now + init + seconds)
        meters.lambda_invocations(self.usage, function, memory_mb=self.shape.memory_mb, seconds=seconds,
                                  arch=self.shape.arch, init_seconds=init)
        meters.log_ingestion(self.usage, "of the functions", LOG_BYTES[function])
        if function == "check_work":
            meters.sqs_requests(self.usage, "GetQueueAttributes by CheckWork", 1)
        elif function == "model_lock":
            meters.dynamodb_writes(self.usage, "model lock writes", 1)
        elif function == "model_control":
            if self.preset.hosted:  # model_control: only a backend billed while hosted (idle_cost)
                self._published(now, published_by(f"model_control {action}"))
            if action == "stop":
                meters.dynamodb_writes(self.usage, "model lock writes", 1)
            if self.preset.kind == FUNCTION and action == "start":
                meters.s3_requests(self.usage, "GET", "of the model index and package", 1 + 2 * cold)
        return init

    def status_reported(self, now: float, *, draining: bool, backlog: int, load_published: bool = False) -> None:
        """CheckWork after its call (check_work.report): the load metrics when it publishes them,
        and the pipeline status when it speaks for the pipeline (draining, or nothing waiting)."""
        if load_published:
            self._published(now, published_by("load"))
        if backlog and not draining:
            return
        meters.s3_requests(self.usage, "PUT", "of the pipeline status", 1)
        if backlog:
            meters.s3_requests(self.usage, "GET", "of the pipeline status", 1)

    def handed_over(self, now: float) -> None:
        """A hand-over's HandOvers metric."""
        self._published(now, published_by("hand_over"))

    def notified(self) -> None:
        """NotifyDefects: one SNS publish (the topic is KMS-encrypted: one KMS call at most)."""
        meters.sns_publishes(self.usage, "defect notifications", 1)
        meters.kms_requests(self.usage, "SNS encryption of a notification", 1)
        if self.shape.email_subscriptions:
            self.usage.add("SNS", "e-mail deliveries", "sns.email", self.shape.email_subscriptions)

    # --- the drain ----------------------------------------------------------------------------------

    @property
    def drain_vcpus(self) -> float:
        return self.shape.drain_memory_mb / ONE_VCPU_MB

    def drain_started(self, now: float, workers: int) -> float:
        """Workers take their environments; the wait before the first image (cold starts, and a
        serverless endpoint warming up after an idle spell). A cold start is imports and a model
        fetch, work for the CPU: less than a vCPU stretches it."""
        cold = self.drain_cold_seconds / min(1.0, self.drain_vcpus) if self.preset.kind == FUNCTION \
            else self.drain_cold_seconds
        colds = self._pool("drain").take(now, workers)
        wait = cold if colds else 0.0
        if self.preset.kind == FUNCTION:
            meters.s3_requests(self.usage, "GET", "of the package and model file by a cold drain", 2 * colds)
        if self.preset.kind == ENDPOINT and self.endpoint.take(now + wait):
            wait += self.preset.endpoint_cold_seconds
        return wait

    def drain_finished(self, now: float, workers: int, *, seconds: float, images: Sequence[int]) -> None:
        """The workers ran ``seconds`` each (cold starts included) and judged ``images``."""
        self._pool("drain").give_back(now, workers)
        if self.preset.kind == ENDPOINT:
            self.endpoint.give_back(now)
        usage, n = self.usage, len(images)
        anomalous = sum(1 for i in images if self.images.anomalous(i))
        meters.lambda_invocations(usage, "drain", memory_mb=self.shape.drain_memory_mb, seconds=seconds,
                                  arch=self.shape.arch, count=workers)
        meters.log_ingestion(usage, "of the functions", LOG_BYTES["drain"] * workers)
        receives = math.ceil(n / MESSAGES_PER_RECEIVE) + EMPTY_RECEIVES * workers
        meters.sqs_requests(usage, "ReceiveMessage by the drain (empty ones too)", receives,
                            payload_bytes=MESSAGE_BYTES * min(n, MESSAGES_PER_RECEIVE))
        share = math.ceil(n / workers) if workers else 0  # each worker deletes its own, ten at a time
        meters.sqs_requests(usage, "DeleteMessageBatch by the drain", workers * math.ceil(share / MESSAGES_PER_RECEIVE))
        meters.s3_requests(usage, "GET", "of the image by the drain", n)
        meters.s3_requests(usage, "PUT", "of the result", n)
        meters.s3_requests(usage, "PUT", "of the anomaly masks", anomalous)
        if self.shape.images_moved:  # ImageUpload=final-bucket: uploaded to its place, nothing to move
            meters.s3_requests(usage, "COPY", "of the image to the final bucket", n)
            meters.s3_requests(usage, "DELETE", "of the image from the source bucket", n)
        self._judged(n, anomalous)
        self._published(now, published_by("drain", lines=self.lines if n else 0, hosted=self.preset.hosted))

    def _judged(self, n: int, anomalous: int) -> None:
        """What the backend itself bills per image (beyond the drain's own time)."""
        judgements = n + anomalous  # an anomalous image is judged again for its mask
        if self.preset.kind == ENDPOINT:
            meters.sagemaker_serverless(self.usage, "", memory_mb=self.preset.endpoint_memory_mb,
                                        seconds=self.images.detector_seconds, count=judgements)
        if self.preset.data_processed:
            meters.sagemaker_data(self.usage, "by the endpoint", bytes_in=judgements * self.images.image_bytes,
                                  bytes_out=n * self.images.result_bytes + anomalous * self.images.mask_bytes)

    # --- executions ---------------------------------------------------------------------------------

    def execution(self, transitions: int) -> None:
        meters.state_transitions(self.usage, "state transitions", transitions)

    def _pool(self, function: str) -> WarmPool:
        return self.pools.setdefault(function, WarmPool())

    def _published(self, now: float, identities: frozenset[str]) -> None:
        """Metrics published in this hour: each is billed for the hour."""
        hour = int(now // HOUR)
        self.metric_hours.update((hour, identity) for identity in identities)


@lru_cache(maxsize=64)
def published_by(call: str, *, lines: int = 0, hosted: bool = False) -> frozenset[str]:
    """The metrics one call publishes, from the function's own record_* call (inside
    ``metrics.collecting()``: nothing printed). Asked once per kind of call, outside the simulated
    clock's hot path: ``model_control {action}`` (a backend billed while hosted), ``load``
    (CheckWork publishing overload control's), ``hand_over`` (the model lock), ``drain`` (images of
    ``lines`` lines; the model's age when ``hosted``)."""
    with emf.metrics.collecting() as invocation:
        if call.startswith("model_control "):
            emf.record_model(call.split()[1], "HOSTED", HOSTED_STATE)
        elif call == "load":
            emf.record_load(arrival_per_minute=0, drain_per_minute=0, units=1, overloaded=False, backlog_minutes=0,
                            history_events=0)
        elif call == "hand_over":
            emf.metrics.add(emf.HAND_OVERS, emf.MetricUnit.Count, 1)  # as the model lock does
        elif call == "drain":
            tally = emf.LineTally()
            for line in range(lines):  # every line's images in every drain: the most metrics
                tally.record("site", f"line {line}", anomalous=False)
            emf.record_drain(tally, retried=0, model=HOSTED_STATE if hosted else None)
        else:
            raise ValueError(f"no such call {call!r}")
    return frozenset(invocation.identities())
