"""The floor: what any design must pay to judge an image in the cloud and hand its result back.

One PUT of the image (it has to reach the cloud), one PUT of the result (it has to be stored
for the gateway), and the detector's CPU time at the cheapest compute there is: Lambda arm64
GB-seconds at 1,769 MB, the memory that gives it the one vCPU it needs. Nothing else: no
queue, no orchestration, no listing, no cold start, no idle capacity, no monthly charges.
"""
from __future__ import annotations

import batchsight_tools.costmodel.meters as meters
from batchsight_tools.costmodel.backends import ONE_VCPU_MB
from batchsight_tools.costmodel.images import Images
from batchsight_tools.costmodel.usage import Usage


def floor_usage(images: int, spec: Images) -> Usage:
    usage = Usage()
    meters.s3_requests(usage, "PUT", "of the image", images)
    meters.s3_requests(usage, "PUT", "of the result", images)
    usage.add("Lambda", "the detector's CPU time (arm64, one vCPU)", "lambda.gb_second.arm64",
              images * ONE_VCPU_MB / 1024.0 * spec.detector_seconds)
    return usage
