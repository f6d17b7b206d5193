"""Synthetic product images for the demo and the tests: a machined flange, some with defects.

A fresh machine has no inspection dataset, so the demo renders its own camera frames: a
gray flange with a centre bore and a ring of bolt holes on a dark fixture.  Each frame
varies the way a real line does (the part sits a pixel or two off, the light drifts,
the sensor adds noise) so that a detector has to tell nuisance from defect.  Defects are
a scratch, a missing (filled) bolt hole, or a few dark spots.

Rendering is analytic (distance fields with a one-pixel soft edge) so sub-pixel jitter is
real and the output is deterministic for a seed.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image

Defect = Literal["scratch", "missing_feature", "spot"]
DEFECTS: tuple[Defect, ...] = ("scratch", "missing_feature", "spot")

_JPEG_QUALITY = 92
_PNG_RATE = 0.1          # a few frames as PNG, since cameras and PCs deliver both
_BOLT_HOLES = 8
_TINT = np.array([1.0, 0.99, 0.96])   # slightly warm light, so frames are colour like a camera's
# Geometry as fractions of the image side.
_FLANGE_R, _HUB_R, _BORE_R = 0.40, 0.20, 0.11
_BOLT_CIRCLE_R, _BOLT_R = 0.30, 0.035
_DEMO_STREAM, _TRAINING_STREAM = 0, 1
_MIN_SIZE = 32


@dataclass(frozen=True)
class SynthImage:
    """One generated frame and its ground truth (kept here, never in the file name)."""

    path: Path
    label: Literal["normal", "anomaly"]
    defect: Defect | None


def generate(out_dir: Path, *, count: int, anomaly_rate: float = 0.25, size: int = 256,
             seed: int = 0) -> list[SynthImage]:
    """Write `count` frames to `out_dir` as part_00000.jpg ... and return their labels.

    Exactly round(count * anomaly_rate) frames are defective, at random positions, with
    the defect kinds taken in turn so every kind appears once there are three defects.
    The file format is drawn independently of the label.
    """
    if not 0.0 <= anomaly_rate <= 1.0:
        raise ValueError(f"anomaly_rate must be within [0, 1], got {anomaly_rate}")
    rng = np.random.default_rng([seed, _DEMO_STREAM])
    n_anomalies = round(count * anomaly_rate)
    defects: list[Defect | None] = [DEFECTS[i % len(DEFECTS)] for i in range(n_anomalies)]
    defects += [None] * (count - n_anomalies)
    defects = [defects[i] for i in rng.permutation(count)]
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    images = []
    for index, defect in enumerate(defects):
        fmt: Literal["jpg", "png"] = "png" if rng.random() < _PNG_RATE else "jpg"
        path = out_dir / f"part_{index:05d}.{fmt}"
        path.write_bytes(encode(render_part(rng, size=size, defect=defect), fmt))
        label: Literal["normal", "anomaly"] = "normal" if defect is None else "anomaly"
        images.append(SynthImage(path=path, label=label, defect=defect))
    return images


def generate_training_set(count: int, size: int = 256, seed: int = 0) -> list[bytes]:
    """JPEG bytes of `count` normal frames for fitting a detector.

    Drawn from a different random stream than `generate()` with the same seed, so a
    detector is never evaluated on the frames it was fitted on.
    """
    rng = np.random.default_rng([seed, _TRAINING_STREAM])
    return [encode(render_part(rng, size=size, defect=None), "jpg") for _ in range(count)]


def encode(image: Image.Image, fmt: Literal["jpg", "png"]) -> bytes:
    """Camera-like file bytes: JPEG at quality 92, or PNG."""
    buffer = io.BytesIO()
    if fmt == "jpg":
        image.save(buffer, format="JPEG", quality=_JPEG_QUALITY)
    else:
        image.save(buffer, format="PNG")
    return buffer.getvalue()


def render_part(rng: np.random.Generator, *, size: int, defect: Defect | None) -> Image.Image:
    """Render one RGB frame of the flange with `defect` (or none) and production-line nuisance."""
    if defect is not None and defect not in DEFECTS:
        raise ValueError(f"unknown defect {defect!r}; expected one of {DEFECTS}")
    if size < _MIN_SIZE:
        raise ValueError(f"size must be at least {_MIN_SIZE} px to draw the part, got {size}")
    # Nuisance first, so that the same generator state renders the same part with and
    # without a defect: the defect is then the only difference.
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    cy, cx = size / 2 + rng.uniform(-2, 2, size=2)           # where the part landed
    rotation = rng.uniform(-0.01, 0.01)                        # radians; fixtures are not perfect
    tilt = rng.uniform(-6, 6, size=2)                          # light fall-off across the plate
    gain, offset = rng.uniform(0.9, 1.1), rng.uniform(-10, 10)   # exposure and light drift
    noise = rng.normal(0, 2.5, (size, size))                   # sensor noise
    dist = np.hypot(yy - cy, xx - cx)

    frame = 55 + (tilt[0] * yy + tilt[1] * xx) / size        # dark fixture plate
    surface = 150 + 6 * np.sin(dist * 1.3)                    # turning marks on the face
    frame = _paint(frame, _disc(dist, _FLANGE_R * size), surface)
    frame = _paint(frame, _disc(dist, _HUB_R * size), surface + 25)  # raised hub: brighter
    frame = _paint(frame, _disc(dist, _BORE_R * size), 30.0)
    metal = _disc(dist, _FLANGE_R * size) - _disc(dist, _BORE_R * size)

    missing = int(rng.integers(_BOLT_HOLES)) if defect == "missing_feature" else -1
    for hole in range(_BOLT_HOLES):
        angle = rotation + 2 * np.pi * hole / _BOLT_HOLES
        hy = cy + _BOLT_CIRCLE_R * size * np.sin(angle)
        hx = cx + _BOLT_CIRCLE_R * size * np.cos(angle)
        if hole != missing:
            hole_coverage = _disc(np.hypot(yy - hy, xx - hx), _BOLT_R * size)
            frame = _paint(frame, hole_coverage, 35.0)
            metal = metal - hole_coverage

    if defect == "scratch":
        frame = frame + metal * _scratch(rng, metal, yy, xx, size)
    elif defect == "spot":
        frame = frame - metal * _spots(rng, metal, yy, xx, size)

    gray = np.clip(frame * gain + offset + noise, 0, 255)
    return Image.fromarray((gray[..., None] * _TINT).round().astype(np.uint8), "RGB")


def _disc(dist: np.ndarray, radius: float) -> np.ndarray:
    """Coverage (0..1) of a disc given each pixel's distance to its centre; soft 1 px edge."""
    return np.clip(radius - dist + 0.5, 0.0, 1.0)


def _paint(frame: np.ndarray, coverage: np.ndarray, value: np.ndarray | float) -> np.ndarray:
    return frame * (1 - coverage) + value * coverage


def _on_metal(
    rng: np.random.Generator, metal: np.ndarray, margin: float = 0.0
) -> tuple[float, float]:
    """A random point with solid metal within `margin` px, so a defect never hides in a hole."""
    size, m = metal.shape[0], math.ceil(margin)
    while True:
        py, px = rng.uniform(0, size, size=2)
        y, x = int(py), int(px)
        if metal[max(y - m, 0):y + m + 1, max(x - m, 0):x + m + 1].min() > 0.99:
            return float(py), float(px)


def _scratch(rng: np.random.Generator, metal: np.ndarray, yy: np.ndarray, xx: np.ndarray,
             size: int) -> np.ndarray:
    """Intensity change of a thin straight line, bright (burnished) or dark (a groove)."""
    py, px = _on_metal(rng, metal)
    length = rng.uniform(0.12, 0.3) * size
    angle = rng.uniform(0, np.pi)
    dy, dx = np.sin(angle), np.cos(angle)
    along = np.clip((yy - py) * dy + (xx - px) * dx, -length / 2, length / 2)
    dist = np.hypot(yy - (py + along * dy), xx - (px + along * dx))
    width = max(1.0, rng.uniform(1.2, 2.0) * size / 256)
    coverage = np.clip(width / 2 - dist + 0.5, 0.0, 1.0)
    return rng.choice([-1, 1]) * rng.uniform(60, 90) * coverage


def _spots(rng: np.random.Generator, metal: np.ndarray, yy: np.ndarray, xx: np.ndarray,
           size: int) -> np.ndarray:
    """Darkening by one to three soft-edged blobs (corrosion, oil)."""
    darkening = np.zeros_like(yy)
    for _ in range(int(rng.integers(1, 4))):
        sigma = rng.uniform(0.008, 0.018) * size
        py, px = _on_metal(rng, metal, margin=2 * sigma)
        blob = np.exp(-((yy - py) ** 2 + (xx - px) ** 2) / (2 * sigma**2))
        darkening += rng.uniform(50, 80) * blob
    return darkening
