"""Detection: images/s of the local detector against decoding the same images with Pillow.

Both methods (aligned and patchcore), fitted on a few normal images, score casting and
circuit-board images they were not fitted on from bytes in memory, on 1 and 2 threads; the
baseline is Pillow's open + load of the same images on as many threads.
"""
from __future__ import annotations

import io
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from PIL import Image

from batchsight_detector import fit
from batchsight_tools.bench.edge.figures import Figure, Figures
from batchsight_tools.bench.edge.inputs import shared_images
from batchsight_tools.bench.edge.sizes import Sizes

RUNS = 3                    # best of this many runs per thread count


def bench_detection(data: Path, sizes: Sizes, work: Path, figures: Figures) -> None:
    counts = {"casting": {"aligned": sizes.detect_casting, "patchcore": sizes.patchcore_casting},
              "circuitboard": {"aligned": sizes.detect_circuitboard,
                               "patchcore": sizes.patchcore_circuitboard}}
    for kind, per_method in counts.items():
        normals = [p.read_bytes() for p in sorted((data / kind / "train" / "normal").glob("*.jp*g"))]
        images = scored_images(data, kind)
        for method, count in per_method.items():
            scored = [p.read_bytes() for p in images[:count]]
            detection_figures(kind, method, normals[: sizes.fit_normals], scored, figures)


def scored_images(data: Path, kind: str) -> list[Path]:
    """Images the model was not fitted on: the test split, then the casting camera stream."""
    return [p for p in shared_images(data, kind) if p.parts[-3] != "train"]


def detection_figures(kind: str, method: str, normals: list[bytes], scored: list[bytes],
                      figures: Figures) -> None:
    """Detect and decode-only on the same images, 1 and 2 threads, each the best of RUNS runs
    taken in turn (other work on a shared 2-core machine steals whole seconds from one run)."""
    started = time.perf_counter()
    model = fit(normals, method=method)
    fit_seconds = time.perf_counter() - started
    model.detect(scored[0])  # warm-up: first allocations, the ONNX session
    rates = {1: (0.0, 0.0), 2: (0.0, 0.0)}
    for _ in range(RUNS):
        for threads, (detect, decode) in rates.items():
            rates[threads] = (max(detect, rate(model.detect, scored, threads)),
                              max(decode, rate(decode_only, scored, threads)))
    for threads, (detect, decode) in rates.items():
        detail = (f"{len(scored)} images, fitted on {len(normals)} normals in {fit_seconds:.1f} s"
                  if threads == 1 else f"{detect / rates[1][0]:.2f}x one thread")
        figures.add(Figure(f"detect {kind} {method} {threads}T", detect, "img/s", decode, f"decode {threads}T",
                           detect / decode, detail=detail))


def decode_only(data: bytes) -> None:
    with Image.open(io.BytesIO(data)) as image:
        image.load()


def rate(work: Callable[[bytes], object], items: Sequence[bytes], threads: int) -> float:
    """Items per second of ``work`` over ``items``, in this thread or on a pool of ``threads``."""
    started = time.perf_counter()
    if threads == 1:
        for item in items:
            work(item)
    else:
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(work, items))
    return len(items) / (time.perf_counter() - started)
