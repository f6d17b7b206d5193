"""DetectorModel: a fitted detector, what every consumer of a model holds.

Why a module of its own: scoring is what runs on a gateway for every image, so the class
that scores is kept apart from fitting (fitting.py), from its file format (model_file.py)
and from each method's internals.  Two methods fill it: "aligned" (aligned.py, a bank of
aligned normal images, numpy only) and "patchcore" (patchcore.py, CNN features run by
onnxruntime and a coreset memory bank of normal patches; no alignment, the better choice
for real photographs).  Both share the threshold rule and the calibrated Confidence
(calibration.py, verdict.py) and the single-file format.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import model_file, patchcore
from .aligned import NormalBank
from .features import Preprocessing, decode, image_size, shift
from .onnx_model import OnnxAnomalyModel
from .patchcore import PatchMemory, mask_png
from .verdict import verdict


@dataclass(eq=False)
class DetectorModel:
    """A fitted detector.  Build with `fit()` or `DetectorModel.load()`.

    `threshold` separates normal from anomalous scores.  `score_center` (median) and
    `score_spread` (see `calibration.gumbel_fit`) describe the scores of normal images the
    model did not see during fitting (held-out folds); they turn a score into a confidence.
    """

    preprocessing: Preprocessing
    bank: NormalBank | PatchMemory
    threshold: float
    score_center: float
    score_spread: float
    held_out_scores: np.ndarray
    training_fingerprint: str
    created_at: str
    n_anomalous: int = 0
    method: str = "aligned"
    extractor_path: str | None = None   # patchcore: the ONNX file (None = the shipped one)
    augmentation: tuple[str, ...] = ()  # patchcore: transforms of the normals in the memory
    augmentation_check: dict[str, float] = field(default_factory=dict)  # transform -> AUROC

    def score(self, image_bytes: bytes) -> float:
        """Raw anomaly score (0 = identical to a stored normal image; higher = stranger)."""
        if isinstance(self.bank, PatchMemory):
            return self.bank.max_distance(self._features(image_bytes)[0])
        return self.bank.score(decode(image_bytes, self.preprocessing))

    def anomaly_map(self, image_bytes: bytes) -> np.ndarray:
        """Per-pixel anomaly values at the image's own (EXIF-upright) size, float32 (h, w).

        On the same scale as `score()` and `threshold`: the score is the map's maximum (up
        to interpolation), and `map > threshold` marks the anomalous region.
        """
        if isinstance(self.bank, PatchMemory):
            distances, (width, height) = self._patch_distances(image_bytes)
            return patchcore.upsample(distances, width, height)
        image = decode(image_bytes, self.preprocessing)
        distances, (dy, dx) = self.bank.distance_map(image)
        distances = shift(distances[None], -dy, -dx)[0]   # back to the image's own coordinates
        width, height = image_size(image_bytes)
        return patchcore.upsample(distances, width, height)

    def anomaly_mask_png(self, image_bytes: bytes) -> bytes:
        """PNG mask (255 = anomalous) of `anomaly_map() > threshold`, for the result's mask object."""
        return mask_png(self.anomaly_map(image_bytes), self.threshold)

    def detect(self, image_bytes: bytes) -> dict[str, Any]:
        """Verdict in the Lookout for Vision DetectAnomalyResult shape (see verdict.verdict)."""
        return verdict(self.score(image_bytes), self.threshold, self.score_spread)

    def save(self, path: str | Path) -> None:
        """Write the model as one .npz file (arrays + a JSON metadata string), atomically."""
        model_file.write(self, path)

    @classmethod
    def load(cls, path: str | Path) -> DetectorModel:
        """Read a model written by `save()`; ValueError if it is not one this code can use."""
        return cls(**model_file.read(path))

    @staticmethod
    def from_onnx(path: str | Path, threshold: float = 0.5,
                  input_size: tuple[int, int] | None = None, **options: Any) -> OnnxAnomalyModel:
        """A model exported to ONNX elsewhere (anomalib: image in, score and map out).

        The result has this class's detect(), score(), anomaly_map() and anomaly_mask_png();
        options: score_spread, normalize (see onnx_model.OnnxAnomalyModel).
        """
        return OnnxAnomalyModel(Path(path), threshold=threshold, input_size=input_size, **options)

    def _patch_distances(self, image_bytes: bytes) -> tuple[np.ndarray, tuple[int, int]]:
        """patchcore: the (h, w) feature-cell distance map and the image's (width, height)."""
        assert isinstance(self.bank, PatchMemory)
        features, original = self._features(image_bytes)
        return self.bank.distance_map(features), original

    def _features(self, image_bytes: bytes) -> tuple[np.ndarray, tuple[int, int]]:
        assert isinstance(self.bank, PatchMemory)
        rgb, original = patchcore.rgb_pixels(image_bytes, self.bank.size)
        return patchcore.extractor(self.extractor_path)(rgb), original
