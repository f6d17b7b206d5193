"""The baseline: the same backend and the same limiter, fed from memory, with no AWS at all.

Each of ``workers`` threads owns one ``RateLimiter(cap / workers, burst=concurrency)`` and a
pool of ``concurrency`` threads, as a drain worker does; what the pipeline loses against this
is the cost of its S3, SQS and Step Functions calls and of its batching.
"""
from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from batchsight_pipeline.ratelimit import RateLimiter
from batchsight_tools.bench.drain.fixed_latency_backend import FixedLatencyBackend
from batchsight_tools.bench.drain.setup import DrainConfig


def run_baseline(cfg: DrainConfig, images: list[bytes], state_dir: Path) -> float:
    """Images per second of the same backend and limiter fed from memory by thread pools."""
    backend = FixedLatencyBackend(state_dir=state_dir, latency_seconds=cfg.latency,
                                  startup_seconds=0, start_timeout_seconds=60)
    backend.start(run_token="baseline")
    shares = [images[w::cfg.workers] for w in range(cfg.workers)]

    def worker(share: list[bytes]) -> None:
        limiter = RateLimiter(cfg.cap / cfg.workers, burst=cfg.concurrency)

        def one(data: bytes) -> None:
            limiter.acquire()
            backend.detect(data, content_type="image/jpeg")

        with ThreadPoolExecutor(cfg.concurrency) as pool:
            list(pool.map(one, share))

    started = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(share,)) for share in shares]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    backend.stop()
    return len(images) / elapsed
