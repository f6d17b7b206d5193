"""Drain efficiency of the batch pipeline under moto, against the ideal and a plain baseline.

A backend with a fixed per-call latency and a rate cap (``FixedLatencyBackend``, loaded as the
plug-in ``batchsight_tools.bench.drain.fixed_latency_backend``) is driven by the real
state machine (cloud/statemachine/batch_pipeline.asl.json executed by moto, Lambdas
in-process, LocalCloud as in the tests). N tiny JPEGs are uploaded and queued, one execution
drains them, and the run prints:

  - drain throughput: images / (first ``Drain`` MapStateEntered -> last MapStateExited in the
    execution history), against ideal = min(cap, workers * concurrency / latency); the target
    is 0.95 of ideal when the rate cap bounds it, 0.9 when concurrency / latency does;
  - hosted time (the backend's start/stop ledger) against start time + images / ideal
    throughput, and the overhead in seconds (target: under 120 s);
  - the baseline measured in the same run: the same backend and the same limiter (one
    RateLimiter(cap / workers, burst=concurrency) per worker, ``concurrency`` threads each) fed
    from memory by plain thread pools, no SQS / S3 / Step Functions;
  - what limits: moto's ceiling for the drain's calls per image (``--probe``, same threads,
    queue of the same average depth), and the detect calls and their mean concurrency as the
    backend saw them.

moto runs with a cheaper SQS clock (see ``speed_up_moto``; ``--stock-moto`` turns it off).
Exit status 0 when both targets are met. The code is ``batchsight_tools.bench.drain``
(tools/batchsight_tools/bench/drain/), a module per part of the run.

    python bench/pipeline_drain.py                    # 1,000 images, 50 ms, 2 x 4, cap 16/s
    python bench/pipeline_drain.py --images 200       # quick run (about 1 minute)
    python bench/pipeline_drain.py --cap 40           # above moto's ceiling on 2 cores
    python bench/pipeline_drain.py --latency 0.5 --cap 100   # bound by concurrency / latency
"""
from __future__ import annotations

import sys

from batchsight_tools.bench.drain.cli import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], description=__doc__.splitlines()[0]))
