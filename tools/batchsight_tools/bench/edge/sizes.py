"""How much work each section of ``bench/edge.py`` does: full sizes, or ``--quick`` for the smoke test."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Sizes:
    """How much work each section does; ``--quick`` shrinks every count, not the method."""

    casting: int = 2000
    circuitboard: int = 200
    ingest_rounds: int = 3
    upload: int = 500
    upload_rounds: int = 4
    latency: int = 100
    latency_gap: float = 0.25
    edge_latency: int = 200     # images dropped with the gateway judging, at edge_rate a second
    edge_rate: float = 10.0
    memory: int = 10_000
    memory_seconds: float = 20.0
    memory_batch: int = 500     # batch.max_images: the backlog is cut into batches that fail to upload
    detect_casting: int = 300
    detect_circuitboard: int = 40
    patchcore_casting: int = 40       # patchcore is some 20x slower: fewer images, same method
    patchcore_circuitboard: int = 10
    fit_normals: int = 10


QUICK = Sizes(casting=60, circuitboard=6, ingest_rounds=1, upload=30, upload_rounds=1, latency=6,
              latency_gap=0.3, edge_latency=20, memory=300, memory_seconds=4.0, memory_batch=100, detect_casting=10,
              detect_circuitboard=3, patchcore_casting=4, patchcore_circuitboard=2,
              fit_normals=4)
