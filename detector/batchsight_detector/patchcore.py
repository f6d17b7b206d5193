"""PatchCore-style detector: pretrained CNN patch features + a memory bank of normal patches.

Why: the aligned-image method (aligned.py) compares pixels, so it needs the part to sit in
the same place with the same lighting, and it cannot tell a pore from a reflection.  A
network pretrained on ImageNet describes each patch by what is in it (edges, corners,
texture); a defect is a patch whose description is far from every patch seen on good
parts, wherever that patch sits.  That needs no alignment and is robust to lighting.

    features  = FeatureExtractor()(rgb)        # ONNX (onnxruntime), (C, h, w) at stride 8
    memory    = coreset(normal patches)        # greedy k-center: covers normal variation
    map       = distance of each patch to its nearest memory patch      (numpy)
    score     = map.max()   (the outermost ring of cells excluded, see PatchMemory)

Normal patches may include flipped/rotated copies of the normal images (`TRANSFORMS`):
patchcore_fit.py adds the ones under which the part looks the same (a round casting turned
over), decided at fit time on the normal images alone.

Run time needs numpy + onnxruntime only; the ONNX file is made once by
batchsight_tools/export_features.py (torch at build time) and shipped beside this module.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from .features import DECODE_ERRORS, cannot_decode, upright_size

DEFAULT_EXTRACTOR = Path(__file__).with_name("efficientnet_lite0_features.onnx")
MULTIPLE = 32                 # input sides are multiples of this (the network's stride)
STRIDE = 8                    # one feature-map cell per STRIDE x STRIDE input pixels
_PROJECTION_DIMS = 32         # coreset selection works on a random projection (as PatchCore)
_QUERY_CHUNK = 128            # query rows per distance block: its products stay in cache
_REFINE_BLOCK = 64            # query rows per exact step of PatchMemory.max_distance
BORDER = 1                    # feature cells at the edge left out of the score (zero padding)

# Image transforms a normal part may be seen under (applied to (3, H, W) pixels).  rot90 and
# rot270 only apply to square inputs.
TRANSFORMS = {
    "flip_h": lambda a: a[:, :, ::-1],
    "flip_v": lambda a: a[:, ::-1, :],
    "rot180": lambda a: a[:, ::-1, ::-1],
    "rot90": lambda a: np.rot90(a, 1, axes=(1, 2)),
    "rot270": lambda a: np.rot90(a, 3, axes=(1, 2)),
}

_extractors: dict[str, FeatureExtractor] = {}
_extractors_lock = threading.Lock()


class FeatureExtractor:
    """The ONNX patch feature extractor, run with onnxruntime on the CPU."""

    def __init__(self, path: str | Path = DEFAULT_EXTRACTOR) -> None:
        try:
            import onnxruntime as ort
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise RuntimeError("the patchcore detector needs onnxruntime "
                               "(pip install onnxruntime)") from exc
        self.path = Path(path)
        data = self.path.read_bytes()
        self.sha256 = hashlib.sha256(data).hexdigest()
        options = ort.SessionOptions()
        options.log_severity_level = 3
        # onnxruntime's workers spin for a while after each run by default; on 2 cores that
        # steals the CPU from the nearest-neighbour search that follows (numpy's BLAS
        # threads): about 30 % of the per-image latency under load.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self._session = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
        meta = self._session.get_modelmeta().custom_metadata_map
        self.info = json.loads(meta.get("batchsight", "{}"))
        self.stride = int(self.info.get("stride", STRIDE))
        self.multiple = int(self.info.get("multiple", MULTIPLE))
        self._input = self._session.get_inputs()[0].name

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        """(3, H, W) RGB float32 0..255, sides multiples of `multiple` -> (C, H/8, W/8)."""
        if rgb.ndim != 3 or rgb.shape[0] != 3 or rgb.shape[1] % self.multiple \
                or rgb.shape[2] % self.multiple:
            raise ValueError(f"feature extractor input must be (3, H, W) with sides multiples "
                             f"of {self.multiple}, got {rgb.shape}")
        batch = np.ascontiguousarray(rgb[None], dtype=np.float32)
        return self._session.run(None, {self._input: batch})[0][0]


def extractor(path: str | Path | None = None) -> FeatureExtractor:
    """One shared extractor per file and process (an onnxruntime session is thread-safe)."""
    key = str(Path(path or DEFAULT_EXTRACTOR).resolve())
    with _extractors_lock:
        if key not in _extractors:
            _extractors[key] = FeatureExtractor(key)
        return _extractors[key]


def input_size(width: int, height: int, long_side: int | None) -> tuple[int, int]:
    """Network input (width, height) for images of this size: aspect kept, multiples of 32.

    Default long side: the original's / 3.5, between 256 and 768.  About the detail a
    defect of a few original pixels still leaves in a stride-8 feature, at a cost that
    stays inside the latency budget (2000 px -> 576, 512 px -> 256).
    """
    if long_side is None:
        long_side = int(np.clip(max(width, height) / 3.5, 256, 768))
    long_side = max(MULTIPLE, round(long_side / MULTIPLE) * MULTIPLE)
    short = max(MULTIPLE, round(long_side * min(width, height) / max(width, height)
                                / MULTIPLE) * MULTIPLE)
    return (long_side, short) if width >= height else (short, long_side)


def coreset(patches: np.ndarray, size: int, seed: int = 0) -> np.ndarray:
    """Indices of `size` patches chosen by greedy k-center selection, in selection order.

    Each step takes the patch farthest from everything chosen so far, so the subset covers
    the normal variation, rare-but-normal patches included, rather than sampling its bulk
    the way a random subset would.  Distances on a fixed random projection to 32 dims, as
    in PatchCore: the ranking barely changes and each step is one small mat-vec.  The
    order is kept because every prefix is itself a k-center cover: PatchMemory uses the
    first few hundred as a coarse bank for its exact, pruned maximum.
    """
    n = len(patches)
    size = min(size, n)
    rng = np.random.default_rng(seed)
    projection = rng.standard_normal((patches.shape[1], _PROJECTION_DIMS)).astype(np.float32)
    projected = np.ascontiguousarray(
        np.asarray(patches, dtype=np.float32) @ (projection / np.float32(np.sqrt(_PROJECTION_DIMS))),
        dtype=np.float32)
    norms = np.einsum("ij,ij->i", projected, projected)
    # Start at the patch nearest the mean: a typical one, so the choice does not hang on
    # an outlier.
    start = int(np.argmin(np.einsum("ij,ij->i", projected - projected.mean(0),
                                    projected - projected.mean(0))))
    chosen = np.empty(size, dtype=np.int64)
    half_norms = 0.5 * norms
    # vector @ (dims, n) matrix: far faster than (n, dims) @ vector in OpenBLAS's gemv.
    columns = np.ascontiguousarray(projected.T)
    nearest = np.full(n, np.inf, dtype=np.float32)
    products = np.empty(n, dtype=np.float32)
    index = start
    for step in range(size):
        chosen[step] = index
        # |p - c|^2 / 2 = |p|^2/2 + |c|^2/2 - p.c, updated in place (no temporaries).
        np.dot(projected[index], columns, out=products)
        np.subtract(half_norms, products, out=products)
        products += half_norms[index]
        np.minimum(nearest, products, out=nearest)
        index = int(np.argmax(nearest))
    return chosen


@dataclass(eq=False)
class PatchMemory:
    """Memory bank of normal patch features and the input size they were computed at.

    `ordered`: the patches are in coreset selection order (files of format version 3 on),
    so a prefix is a coarse cover of the whole bank.  `border`: cells this far from the
    feature map's edge are scored as their nearest inner cell: the network's zero padding
    makes edge features depend on where the frame cuts the part, and on the casting
    images most good parts' maxima sat there.  `sources`: for each patch, the training
    image it came from (only while fitting, for held-out scores; not saved).
    """

    patches: np.ndarray          # (n, channels) float32
    size: tuple[int, int]        # network input (width, height)
    border: int = BORDER
    ordered: bool = True
    sources: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.patches = np.ascontiguousarray(self.patches, dtype=np.float32)
        self._half_norms = 0.5 * np.einsum("ij,ij->i", self.patches, self.patches)
        self._transposed = np.ascontiguousarray(self.patches.T)
        n = len(self.patches)
        coarse = min(n, max(256, n // 12))
        # A prefix of a greedy coreset covers the bank; an unordered bank is sampled evenly.
        self._coarse = np.arange(coarse) if self.ordered else np.linspace(
            0, n - 1, coarse).astype(np.int64)
        self._coarse_transposed = np.ascontiguousarray(self._transposed[:, self._coarse])

    @property
    def channels(self) -> int:
        return int(self.patches.shape[1])

    @classmethod
    def fit(cls, features: np.ndarray, size: tuple[int, int], ratio: float,
            max_patches: int, seed: int = 0, groups: np.ndarray | None = None) -> PatchMemory:
        """Coreset of all patches of `features` (n, C, h, w); `groups` (n,) names each map's
        source image (augmented copies share it) for `without()`."""
        patches = features.transpose(0, 2, 3, 1).reshape(-1, features.shape[1])
        keep = max(1, min(max_patches, int(round(len(patches) * ratio))))
        chosen = coreset(patches, keep, seed)
        sources = None
        if groups is not None:
            per_map = features.shape[2] * features.shape[3]
            sources = np.repeat(np.asarray(groups), per_map)[chosen]
        return cls(patches=patches[chosen], size=size, sources=sources)

    def without(self, group: int) -> PatchMemory:
        """The bank minus the patches of one training image: scores that image as unseen."""
        assert self.sources is not None
        keep = self.sources != group
        return PatchMemory(self.patches[keep], self.size, self.border, self.ordered)

    def _squared(self, queries: np.ndarray, transposed: np.ndarray,
                 half_norms: np.ndarray) -> np.ndarray:
        """Squared distance of each query row to its nearest column of `transposed`."""
        products = queries @ transposed
        products -= half_norms
        return np.einsum("ij,ij->i", queries, queries) - 2 * products.max(axis=1)

    def distance_map(self, features: np.ndarray) -> np.ndarray:
        """(C, h, w) features -> (h, w) Euclidean distance of each patch to its nearest
        memory patch.

        |q - m|^2 = |q|^2 - 2 (q.m - |m|^2 / 2): one matrix product per block of queries.
        The outer `border` ring is replaced by its nearest inner cell (see the class).
        """
        channels, height, width = features.shape
        queries = np.ascontiguousarray(features.reshape(channels, -1).T)
        out = np.empty(len(queries), dtype=np.float32)
        for start in range(0, len(queries), _QUERY_CHUNK):
            block = queries[start:start + _QUERY_CHUNK]
            out[start:start + len(block)] = self._squared(block, self._transposed,
                                                          self._half_norms)
        np.maximum(out, 0, out=out)
        return self._fill_border(np.sqrt(out, out=out).reshape(height, width))

    def max_distance(self, features: np.ndarray) -> float:
        """distance_map(features).max(), exactly, without most of the work.

        The distance to a coarse prefix of the bank bounds each patch's distance from
        above.  Patches are refined (exact distance to the whole bank) in order of that
        bound, and the search stops once the next bound is below the largest exact
        distance found: no remaining patch can exceed it.  On the sample sets this
        computes the exact distance for 10-40 % of the patches.
        """
        channels, height, width = features.shape
        b = self.border if min(height, width) > 2 * self.border else 0
        inner = features[:, b:height - b, b:width - b]
        queries = np.ascontiguousarray(inner.reshape(channels, -1).T)
        bound = self._squared(queries, self._coarse_transposed, self._half_norms[self._coarse])
        order = np.argsort(-bound, kind="stable")
        best = -np.inf
        for start in range(0, len(order), _REFINE_BLOCK):
            rows = order[start:start + _REFINE_BLOCK]
            if bound[rows[0]] <= best:
                break
            exact = self._squared(queries[rows], self._transposed, self._half_norms)
            best = max(best, float(exact.max()))
        return math.sqrt(max(best, 0.0))

    def _fill_border(self, distances: np.ndarray) -> np.ndarray:
        b = self.border
        if b <= 0 or min(distances.shape) <= 2 * b:
            return distances
        return np.pad(distances[b:-b, b:-b], b, mode="edge")


def rgb_pixels(data: bytes, size: tuple[int, int]) -> tuple[np.ndarray, tuple[int, int]]:
    """Decode to (3, H, W) float32 RGB 0..255 at `size` (width, height), and the original size.

    Same rules as features.pixels (reduced-scale JPEG decoding, EXIF orientation applied,
    ValueError for anything undecodable) but RGB at a non-square size.
    """
    if not data:
        raise ValueError("cannot decode image: no bytes")
    try:
        with Image.open(io.BytesIO(data)) as img:
            original = upright_size(img)             # before draft() shrinks it
            img.draft("RGB", size)
            upright = ImageOps.exif_transpose(img)
            resized = upright.convert("RGB").resize(size, Image.Resampling.BILINEAR)
    except DECODE_ERRORS as exc:
        raise cannot_decode(exc) from exc
    arr = np.asarray(resized, dtype=np.float32)
    return np.ascontiguousarray(arr.transpose(2, 0, 1)), original


def upsample(values: np.ndarray, width: int, height: int) -> np.ndarray:
    """Bilinear resize of a small 2-D float map to (height, width), as float32."""
    image = Image.fromarray(np.ascontiguousarray(values, dtype=np.float32), mode="F")
    return np.asarray(image.resize((width, height), Image.Resampling.BILINEAR), dtype=np.float32)


def mask_png(anomaly_map: np.ndarray, threshold: float) -> bytes:
    """PNG (8-bit grey, 255 = anomalous) of the pixels whose anomaly value exceeds `threshold`."""
    mask = np.where(np.asarray(anomaly_map) > threshold, 255, 0).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(mask, mode="L").save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()
