"""What to deploy: a backend with its stack parameters and the gateway's settings, and what it runs at.

A Deployment is what ``batchsight plan`` prints: the ``sam deploy --parameter-overrides`` line
and the component's ``batch.*`` and ``results.*`` settings. For the backends with nothing to
host it also derives the drain's speed (the ModelService the simulation drains at) from the
detector's time per image and the function's vCPUs.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from batchsight_tools.costmodel.backends import ENDPOINT, FUNCTION, ONE_VCPU_MB, BackendPreset
from batchsight_tools.costmodel.edge import EdgeBatching, Uplink
from batchsight_tools.costmodel.images import Images
from batchsight_tools.costmodel.model import ModelService
from batchsight_tools.costmodel.pipeline import CloudSettings, OurPolicy, template_drain_target_seconds
from batchsight_tools.costmodel.result_pull import PullSettings

# The drain's own CPU per image around the detector (its S3 and SQS calls through boto3, the
# model file's checksum per detect), on the function backend where it shares the vCPU: estimate.
DRAIN_CPU_SECONDS_PER_IMAGE = 0.005
ENDPOINT_CONCURRENCY = 4  # the template's DetectConcurrency: calls in flight per drain worker
# The gateway's main loop ticks every 0.2 s: at latencies of seconds the cut's tick matters.
RUNTIME_UPLINK = Uplink(tick_seconds=0.2)


@dataclass(frozen=True)
class Deployment:
    backend: BackendPreset
    policy: OurPolicy
    drain_memory_mb: int
    detect_tps: float

    def parameter_overrides(self) -> str:
        cloud = self.policy.cloud
        return (f"ModelBackend={self.backend.name} DrainMemorySize={self.drain_memory_mb} "
                f"DrainWorkers={cloud.drain_workers} DetectConcurrency={cloud.detect_concurrency} "
                f"DetectTps={self.detect_tps:g} PollSeconds={cloud.poll_seconds} "
                f"StartTimeoutSeconds={cloud.start_timeout_seconds} LockLeaseSeconds={cloud.lock_lease_seconds}"
                + (f" DrainTargetSeconds={cloud.drain_target_seconds:g}" if self.backend.kind == FUNCTION else ""))

    def gateway_settings(self) -> dict[str, str]:
        batch = self.policy.batching
        return {"batch.max_age_seconds": f"{batch.max_age_seconds:g}", "batch.max_images": str(batch.max_images),
                "batch.interval_seconds": f"{batch.interval_seconds:g}",
                "batch.follow": str(batch.follow).lower(),
                "results.poll_seconds": f"{self.policy.results.poll_seconds:g}",
                "results.push": str(self.policy.results.push).lower()}


def drain_speed(preset: BackendPreset, images: Images, memory_mb: int) -> tuple[float, int]:
    """(seconds one image holds a detect slot, detect slots per drain worker) of a serverless backend.

    The function backend runs the detector on the drain's own vCPUs (one image per vCPU, a
    fraction of a vCPU stretches it); an endpoint takes DetectConcurrency calls at a time.
    """
    if preset.kind == FUNCTION:
        vcpus = memory_mb / ONE_VCPU_MB
        return images.seconds_on(vcpus) + DRAIN_CPU_SECONDS_PER_IMAGE / min(1.0, vcpus), max(1, math.floor(vcpus))
    if preset.kind == ENDPOINT:
        return images.detector_seconds + preset.call_overhead_seconds, ENDPOINT_CONCURRENCY
    raise ValueError(f"{preset.name} is hosted: its speed is the hosted model's (--detect-latency, --detect-tps)")


def serverless_deployment(preset: BackendPreset, images: Images, batching: EdgeBatching, base: CloudSettings, *,
                          results: PullSettings | None = None, memory_mb: int | None = None,
                          speed: tuple[float, int] | None = None) -> tuple[Deployment, ModelService]:
    """A function or endpoint backend with these batch settings, and the speed it drains at
    (``drain_speed``'s unless ``speed`` gives the seconds per image and the slots).

    DetectTps (the rate limit the drain shares among its workers) is set to what the workers
    can do, so it never holds them back. With the function backend CheckWork sizes the drain from
    the backlog (the template's DrainTargetSeconds).
    """
    memory = int(memory_mb or preset.drain_memory_mb)
    seconds, slots = speed or drain_speed(preset, images, memory)
    tps = math.ceil(base.drain_workers * slots / seconds)
    cloud = CloudSettings(poll_seconds=base.poll_seconds, start_timeout_seconds=base.start_timeout_seconds,
                          drain_workers=base.drain_workers, detect_concurrency=slots,
                          lock_lease_seconds=base.lock_lease_seconds, schedule_seconds=base.schedule_seconds,
                          drain_timeout_seconds=base.drain_timeout_seconds, task_seconds=base.task_seconds,
                          drain_target_seconds=template_drain_target_seconds() if preset.kind == FUNCTION else 0.0)
    policy = OurPolicy(batching=batching, cloud=cloud, uplink=RUNTIME_UPLINK, results=results or PullSettings())
    service = ModelService(start_minutes=(0.0, 0.0), detect_latency_seconds=seconds, detect_tps=float(tps))
    return Deployment(preset, policy, memory, float(tps)), service
