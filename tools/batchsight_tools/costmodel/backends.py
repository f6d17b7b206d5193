"""What the cost model assumes of each model backend: how it starts, what it bills, how fast it is.

Every backend of cloud/template.yaml has a preset here (the tests hold the two lists together),
plus ``sagemaker-serverless``, which the model prices before the template offers it. The
figures are starting points until a deployment measures its own; each says where it comes from.

Three kinds of backend, which the simulation treats differently:

- ``function``: the drain function runs the detector itself (``lambda``). Nothing is hosted; a
  start is one GET of the model index; each image costs drain time on the function's vCPU.
- ``endpoint``: a serverless SageMaker endpoint that scales to zero. Nothing to start; each image
  is an InvokeEndpoint billed per GB-second of inference and per GB of data in and out, and the
  first call after an idle spell waits for a cold start.
- ``hosted``: a model hosted by the hour and started and stopped around batches (``sagemaker``,
  ``lookoutvision``): the start takes minutes and every minute hosted is billed.
"""
from __future__ import annotations

from dataclasses import dataclass

FUNCTION, ENDPOINT, HOSTED = "function", "endpoint", "hosted"
ONE_VCPU_MB = 1769  # Lambda gives one full vCPU at 1,769 MB (its documented memory-to-CPU rule)


@dataclass(frozen=True)
class BackendPreset:
    name: str
    kind: str
    start_minutes: tuple[float, float] = (0.0, 0.0)  # hosted: a start takes this long (uniform draw)
    hosting_price: str = ""  # hosted: the price key of an instance (inference unit) hour
    unit_hour: str = ""
    service: str = "SageMaker"  # the service the hosting is billed by
    data_processed: bool = False  # SageMaker bills the data its endpoints process
    drain_memory_mb: int = 512  # the DrainMemorySize it needs
    drain_cold_seconds: float = 0.8  # a cold drain function: python, boto3, Powertools (estimate)
    endpoint_memory_mb: int = 0  # endpoint: the serverless memory size
    endpoint_cold_seconds: float = 0.0  # endpoint: the first call after an idle spell
    call_overhead_seconds: float = 0.02  # endpoint, hosted: the network around one InvokeEndpoint
    note: str = ""

    @property
    def hosted(self) -> bool:
        return self.kind == HOSTED

    def starts_at_once(self) -> bool:
        return self.start_minutes == (0.0, 0.0)


PRESETS: dict[str, BackendPreset] = {preset.name: preset for preset in (
    BackendPreset(
        "lambda", FUNCTION, drain_memory_mb=ONE_VCPU_MB, drain_cold_seconds=3.0,
        note="a cold drain imports numpy and onnxruntime and fetches the model package: 2-4 s by the "
             "issue's estimate, 3 s taken (not measured on Lambda here; pass --cold-start-seconds)"),
    BackendPreset(
        "sagemaker", HOSTED, start_minutes=(5.0, 10.0), hosting_price="sagemaker.ml.m5.xlarge.hour",
        unit_hour="instance-hour", data_processed=True,
        note="an endpoint takes several minutes to reach InService (5-10 is an estimate); ml.m5.xlarge"),
    BackendPreset(
        "sagemaker-serverless", ENDPOINT, data_processed=True, endpoint_memory_mb=2048,
        endpoint_cold_seconds=5.0,
        note="AWS documents memory sizes of 1-6 GB, billing per millisecond of inference and per GB "
             "processed, and cold starts after idle without a duration: 5 s is our estimate"),
    BackendPreset(
        "lookoutvision", HOSTED, start_minutes=(10.0, 20.0), hosting_price="lookoutvision.inference_unit_hour",
        unit_hour="inference-unit hour", service="Lookout for Vision",
        note="10-20 minutes documented to start; the service ended support on 2025-10-31"),
)}
HOSTED_BACKENDS = tuple(name for name, preset in PRESETS.items() if preset.hosted)
WARM_SECONDS = 300.0  # an idle Lambda environment (or serverless endpoint) is kept about this long:
#                       not documented, observed between 5 and 15 minutes; the shorter end is taken
