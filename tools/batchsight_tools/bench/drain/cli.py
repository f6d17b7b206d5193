"""The run of ``bench/pipeline_drain.py``: baseline, probe, one execution, then the table.

The baseline runs first, before moto is up, so nothing else takes the CPU; the probe runs
in the same emulator as the execution, on a queue of its own.
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from batchsight_tools.bench.drain.baseline import run_baseline
from batchsight_tools.bench.drain.fixed_latency_backend import FixedLatencyBackend
from batchsight_tools.bench.drain.inputs import make_jpegs, queue_images
from batchsight_tools.bench.drain.moto_clock import speed_up_moto
from batchsight_tools.bench.drain.pipeline import PipelineRun, run_pipeline
from batchsight_tools.bench.drain.probe import probe_moto
from batchsight_tools.bench.drain.setup import DrainConfig
from batchsight_tools.bench.drain.table import print_table, targets_met
from batchsight_tools.localcloud.stack import LocalCloud


def main(argv: list[str] | None, *, description: str) -> int:
    """Parse ``argv`` and run; 0 when both targets are met."""
    args = parse(argv, description)
    cfg = DrainConfig(images=args.images, latency=args.latency, concurrency=args.concurrency,
                      workers=args.workers, cap=args.cap, start_seconds=args.start_seconds,
                      probe=min(args.probe, args.images))
    if not args.stock_moto:
        speed_up_moto()
    print(f"drain benchmark: {cfg.images} images, latency {cfg.latency * 1000:.0f} ms, "
          f"{cfg.workers} workers x {cfg.concurrency} concurrent, cap {cfg.cap:g}/s, "
          f"simulated start {cfg.start_seconds:g} s, "
          f"{'stock moto' if args.stock_moto else 'moto with the cheap SQS clock'}")
    print(f"ideal throughput {cfg.ideal:.1f} images/s (limited by the {cfg.limited_by})")
    images = make_jpegs(cfg.images)
    with tempfile.TemporaryDirectory(prefix="bench-drain-") as tmp:
        baseline = run_baseline(cfg, images[:max(1, min(args.baseline_images, cfg.images))],
                                Path(tmp) / "baseline")
        print(f"baseline (backend + limiter, thread pools, no AWS): {baseline:.1f} images/s")
        run, ceiling = run_in_local_cloud(cfg, images, Path(tmp) / "hosting", args.timeout)
    ratio = print_table(cfg, run, baseline, ceiling)
    return 0 if targets_met(cfg, run, ratio) else 1


def parse(argv: list[str] | None, description: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--latency", type=float, default=0.05, help="seconds per detect call")
    parser.add_argument("--concurrency", type=int, default=4, help="DetectConcurrency")
    parser.add_argument("--workers", type=int, default=2, help="DrainWorkers")
    parser.add_argument("--cap", type=float, default=16.0, help="DetectTps: the backend's rate cap")
    parser.add_argument("--start-seconds", type=float, default=5.0,
                        help="simulated model start time (hosting warm-up)")
    parser.add_argument("--probe", type=int, default=200,
                        help="images for the moto probe (0 skips it)")
    parser.add_argument("--baseline-images", type=int, default=300,
                        help="images for the baseline (at most --images)")
    parser.add_argument("--stock-moto", action="store_true",
                        help="leave moto's SQS clock as it is (receive cost grows with queue depth)")
    parser.add_argument("--timeout", type=float, default=900.0, help="execution timeout, seconds")
    return parser.parse_args(argv)


def run_in_local_cloud(cfg: DrainConfig, images: list[bytes], state_dir: Path,
                       timeout: float) -> tuple[PipelineRun, float | None]:
    """LocalCloud with the fixed-latency backend: the probe (unless 0), then the execution."""
    cloud = LocalCloud(
        parameters={"ModelBackend": FixedLatencyBackend.PLUGIN, "DrainWorkers": str(cfg.workers),
                    "DetectConcurrency": str(cfg.concurrency), "DetectTps": f"{cfg.cap:g}",
                    "PollSeconds": "1"},
        function_environment={"FIXED_LATENCY_STATE_DIR": str(state_dir),
                              "FIXED_LATENCY_SECONDS": repr(cfg.latency),
                              "FIXED_LATENCY_START_SECONDS": repr(cfg.start_seconds),
                              "POWERTOOLS_LOG_LEVEL": "WARNING",
                              "POWERTOOLS_METRICS_DISABLED": "true"})
    outputs = cloud.start()
    try:
        ceiling = None
        if cfg.probe:
            ceiling = probe_moto(cloud, outputs, cfg, cfg.workers * cfg.concurrency)
            print(f"moto ceiling (the drain's AWS calls, no model, no limiter, "
                  f"{cfg.workers * cfg.concurrency} threads): {ceiling:.1f} images/s")
        queued = queue_images(cloud, outputs, images, "bench-drain")
        print(f"queued {cfg.images} images in {queued:.1f} s; running one execution ...")
        return run_pipeline(cloud, outputs, cfg, state_dir, timeout), ceiling
    finally:
        cloud.stop()
