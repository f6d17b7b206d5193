"""The edge program's own costs, each next to a baseline measured in the same run.

Figures (one line each, then a summary; exit 0 when every goal is met, else 1):

  - ingest: images/s from drop to journaled through ``Ingestor.ingest_many`` (staging rename,
    bounded read, inspection of size, header and complete stream, SHA-256, one sync barrier
    and one journal transaction with ``synchronous=FULL`` per group, move into the spool),
    for casting-size (512x512, ~25 KB) and circuit-board-size (2000x1334, ~1.3 MB) JPEGs;
    baseline: plain read + sha256 of the same files. Goal: 0.5 of baseline. Also reported:
    the floor (the same renames, read, hash and syncs with nothing around them), drop to
    validated, every pixel decoded by the decoder's child process meanwhile, and that
    process's peak RSS. The median of 3 rounds.
    The watcher's completeness wait (``ingest.stable_seconds``) is a configured delay, not
    work, and is left out.
  - upload: ``CloudLink.submit`` of one journaled batch of 500 (uploads to S3 with their
    journal records, SendMessageBatch, StartExecution) into moto server (its own process, so
    the emulator does not share our GIL), against s3transfer's TransferManager uploading the
    same files into the same emulator at the same concurrency with the same checksum
    algorithm (SHA-256), followed by the same SQS and Step Functions calls. Best of four
    alternating rounds. Goal: at most 1.15x, for the whole batch and for the S3 part alone.
  - drop-to-result latency, p50 and p95: the whole product in local mode (LocalCloud with
    the real state machine and the local backend, a real MQTT broker, the edge program as its
    own process with an immediate batch trigger, ``batch.max_age_seconds: 0.01``), a camera dropping
    casting stream images at a steady rate; baseline: the configured waits an image meets
    while the model is hosted (edge tick + result poll; the detail also gives the cold floor,
    with the model start on its readiness poll).
  - drop-to-alert latency in edge mode, p50 and p95, and CPU time per image: the edge program
    judging with its own ``batchsight serve`` child, 200 casting images at 10 a second, the alert
    (or result) as an HMI subscriber receives it; baseline: the floor, read + decode + detect +
    publish (QoS 1, PUBACK) of the same images at the same rate in this process (the detail also
    gives it back to back). Goal: p50 at most 3x the floor
    and under 0.25 s, p95 under 0.5 s.
  - memory: peak (VmHWM) and steady (median VmRSS) of ``python -m batchsight run`` with
    10,000 images waiting in its journal while the cloud is unreachable; baseline: a bare
    ``python -c 'import batchsight.runtime'``. Goal: under 100 MB steady.
  - detection: images/s of the local detector (aligned and patchcore, fitted on 10 normal
    images) on casting and circuit-board images, 1 and 2 threads; baseline: Pillow decode
    (open + load) of the same images, same thread counts.

Each section is a module of ``batchsight_tools.bench.edge`` (tools/batchsight_tools/bench/edge/).

    python bench/edge.py              # full sizes (about 3 minutes on 2 cores)
    python bench/edge.py --quick      # small counts (the smoke test)
    python bench/edge.py --only ingest,upload --markdown /tmp/figures.md
"""
from __future__ import annotations

import sys
from pathlib import Path

from batchsight_tools.bench.edge.cli import main

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"  # ../shared/data, beside the repository

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], description=__doc__.splitlines()[0], data=SHARED_DATA))
