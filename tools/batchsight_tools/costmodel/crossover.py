"""When start/stop hosting still wins: the steady arrival rate above which a SageMaker endpoint,
kept up all day or started and stopped, costs less a day than the ``lambda`` backend.

Images arrive at a steady rate all day and every design batches them alike (an age trigger of
STEADY_AGE_SECONDS), so only the judging differs. What a batch costs comes from the real state
machine walked on a warm stack (stack_charges.py: drain time, requests, transitions, the
endpoint's data), for two batch sizes: a batch costs ``fixed + n x per_image``, so any rate's day
follows without simulating millions of images. The endpoint adds its instance-hours: always on,
as many instances as the rate keeps busy, 24 hours a day; started and stopped, one start and one
drain per STEADY_CYCLE_SECONDS. The gateway's result pull and the stack's fixed charges are
the same for every design and are left out.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import lru_cache

import batchsight_tools.costmodel.gateway_charges as gateway_charges
from batchsight_tools.costmodel.backends import PRESETS
from batchsight_tools.costmodel.deployment import serverless_deployment
from batchsight_tools.costmodel.edge import EdgeBatching
from batchsight_tools.costmodel.engine import Engine, backend_clock
from batchsight_tools.costmodel.images import Images
from batchsight_tools.costmodel.pipeline import Pipeline, template_cloud_settings
from batchsight_tools.costmodel.prices import PriceBook, price_book
from batchsight_tools.costmodel.stack_charges import StackMeter
from batchsight_tools.costmodel.stack_shape import template_shape
from batchsight_tools.costmodel.usage import Usage

STEADY_AGE_SECONDS = 300.0
STEADY_CYCLE_SECONDS = 2700.0  # start/stop: a 60-minute budget less a start of up to 10 and margins
START_MEAN_SECONDS = 450.0  # the sagemaker preset's 5-10 minutes
DRAIN_WINDOW_SECONDS = 600.0  # start/stop: enough instances to drain a cycle's images in 10 minutes
DAY = 86_400.0
SIZES = (100, 300)  # the two batch sizes walked
MAX_RATE = 10_000_000.0  # images per hour


@dataclass(frozen=True)
class Case:
    name: str
    images: Images  # detector_ms: one image on the function at lambda_memory_mb
    lambda_memory_mb: int
    instance_price: str  # price key of the endpoint's instance-hour
    instance_ms: float  # one image on the instance
    instance_slots: int  # images an instance judges at once


CASES = (
    Case("CPU detector (50 ms an image)", Images(detector_ms=50.0), 1769, "sagemaker.ml.m5.xlarge.hour", 50.0, 4),
    Case("GPU model (200 ms an image)", Images(detector_ms=200.0), 10240, "sagemaker.ml.g4dn.xlarge.hour", 200.0, 1),
)


@dataclass(frozen=True)
class Line:
    """A design's cost of a batch: ``fixed`` plus ``per_image`` for each of its images (USD)."""

    fixed: float
    per_image: float


@lru_cache(maxsize=32)
def _batch_usage(backend: str, case: Case, n: int) -> Usage:
    """One warm batch of ``n`` images through the real state machine, every call charged."""
    preset = PRESETS[backend]
    base = template_cloud_settings()
    batching = EdgeBatching(max_age_seconds=STEADY_AGE_SECONDS, interval_seconds=DAY, max_images=10 * n, follow=False)
    if preset.hosted:  # an endpoint already up: the start answers HOSTED at once
        latency = case.instance_ms / 1000.0 + preset.call_overhead_seconds
        speed, memory = (latency, max(1, case.instance_slots)), preset.drain_memory_mb
    else:
        speed, memory = (case.images.detector_seconds, 1), case.lambda_memory_mb
    deployment, service = serverless_deployment(PRESETS["lambda"], case.images, batching, base, memory_mb=memory,
                                                speed=speed)
    meter = StackMeter(preset, case.images, template_shape(preset.name).with_drain_memory(memory))
    engine = Engine()
    cloud = replace(deployment.policy.cloud, schedule_seconds=0.0)
    if preset.hosted:  # the template sizes the drain from the backlog for lambda only (DrainTargetSeconds)
        cloud = replace(cloud, drain_target_seconds=0.0)
    pipeline = Pipeline(engine, service, cloud, meter=meter)
    with backend_clock(engine):
        for run in range(2):  # the second batch finds every function warm
            meter.usage = Usage()
            for image in range(run * n, (run + 1) * n):
                pipeline.queue.put(image, engine.now)
            pipeline.start_execution(f"steady-{run}", {"v": 1, "trigger": "edge"})
            engine.run()
    gateway_charges.uploaded(meter.usage, n)
    gateway_charges.enqueued(meter.usage, n)
    return meter.usage


def batch_line(backend: str, case: Case, book: PriceBook | None = None) -> Line:
    small, large = (_batch_usage(backend, case, n).bill(book).total for n in SIZES)
    per_image = (large - small) / (SIZES[1] - SIZES[0])
    return Line(small - SIZES[0] * per_image, per_image)


def _batches(rate: float) -> tuple[float, float]:
    """(images, batches) a day at ``rate`` images an hour, batched by the age trigger."""
    images = 24.0 * rate
    return images, min(images, DAY / STEADY_AGE_SECONDS)


def instance_capacity(case: Case) -> float:
    """Images an hour one instance judges when always busy."""
    return 3600.0 * case.instance_slots / (case.instance_ms / 1000.0)


def lambda_day(rate: float, case: Case, book: PriceBook | None = None) -> float:
    images, batches = _batches(rate)
    line = batch_line("lambda", case, book)
    return batches * line.fixed + images * line.per_image


def always_on_day(rate: float, case: Case, book: PriceBook | None = None) -> float:
    images, batches = _batches(rate)
    line = batch_line("sagemaker", case, book)
    instances = max(1, math.ceil(rate / instance_capacity(case)))
    return batches * line.fixed + images * line.per_image + 24 * instances * (book or price_book()).usd(
        case.instance_price)


def start_stop_day(rate: float, case: Case, book: PriceBook | None = None) -> float:
    """Started for each cycle's images and stopped when they are judged; never dearer than always on."""
    images = 24.0 * rate
    cycles = DAY / STEADY_CYCLE_SECONDS
    per_cycle = images / cycles
    instances = max(1, math.ceil(per_cycle / (instance_capacity(case) * DRAIN_WINDOW_SECONDS / 3600.0)))
    hosted_seconds = START_MEAN_SECONDS + per_cycle / (instances * instance_capacity(case) / 3600.0)
    hours = min(24.0, cycles * math.ceil(hosted_seconds / 60.0) / 60.0) * instances
    line = batch_line("sagemaker", case, book)
    cost = cycles * line.fixed + images * line.per_image + hours * (book or price_book()).usd(case.instance_price)
    return min(cost, always_on_day(rate, case, book))


HostedDay = Callable[[float, Case, "PriceBook | None"], float]


def crossover(case: Case, hosted_day: HostedDay = always_on_day, book: PriceBook | None = None) -> float | None:
    """The lowest steady rate (images an hour) at which the endpoint is cheaper, or None up to MAX_RATE."""
    def cheaper(rate: float) -> bool:
        return hosted_day(rate, case, book) < lambda_day(rate, case, book)

    rates = [10 ** (1 + k / 20) for k in range(int(20 * (math.log10(MAX_RATE) - 1)) + 1)]
    below = rates[0]
    for rate in rates:
        if cheaper(rate):
            low, high = below, rate
            for _ in range(40):
                middle = math.sqrt(low * high)
                low, high = (low, middle) if cheaper(middle) else (middle, high)
            return high
        below = rate
    return None


def break_even_ms(case: Case, book: PriceBook | None = None) -> float:
    """The function's time per image above which a fully busy endpoint judges an image for less
    (the function's cost per image is linear in its time)."""
    endpoint = (batch_line("sagemaker", case, book).per_image
                + (book or price_book()).usd(case.instance_price) / instance_capacity(case))
    slow = replace(case, images=replace(case.images, detector_ms=2 * case.images.detector_ms))
    at_ms, at_twice = batch_line("lambda", case, book).per_image, batch_line("lambda", slow, book).per_image
    slope = (at_twice - at_ms) / case.images.detector_ms  # USD per image per ms
    return case.images.detector_ms + (endpoint - at_ms) / slope
