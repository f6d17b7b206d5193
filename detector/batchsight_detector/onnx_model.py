"""An anomaly model exported to ONNX elsewhere (e.g. anomalib), run with onnxruntime.

anomalib's ONNX export (`engine.export(model, ExportType.ONNX)`) takes one input named
"input", float32 (1, 3, H, W) RGB in 0..1 (its pre-processor, resize and ImageNet
normalisation, is inside the graph in anomalib 1.x/2.x), and returns the named fields of its
InferenceBatch that are set: "pred_score" (post-processed so 0.5 is the threshold),
"pred_label", "anomaly_map" (1, 1, H, W) or (1, H, W), "pred_mask".  This wrapper finds the
outputs by those names (falling back to "the 1-element output" and "the image-shaped
output"), so other exporters with the same I/O work too.

    model = DetectorModel.from_onnx("model.onnx", threshold=0.5, input_size=(256, 256))
    model.detect(image_bytes)      # same result shape and Confidence rule as the local models
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .calibration import tail_scale
from .patchcore import mask_png, rgb_pixels, upsample
from .verdict import verdict

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32).reshape(3, 1, 1)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32).reshape(3, 1, 1)
_SCORE_NAMES = ("pred_score", "anomaly_score", "score", "output")
_MAP_NAMES = ("anomaly_map", "amap", "map")


@dataclass(eq=False)
class OnnxAnomalyModel:
    """detect() / score() / anomaly_map() over an exported ONNX anomaly model.

    `threshold`: score above it = anomalous (0.5 for anomalib's normalised scores).
    `score_spread`: the score distance from the threshold that gives 73 % confidence (as
    in the local models: Confidence = logistic(|score - threshold| / score_spread));
    set it with `calibrate(normal_images)` or pass it.
    `normalize`: "none" feeds 0..1 RGB (anomalib exports), "imagenet" applies the ImageNet
    mean/std first (for a bare backbone export).
    """

    path: Path
    threshold: float = 0.5
    input_size: tuple[int, int] | None = None   # (height, width); None = from the model
    score_spread: float = 0.1
    normalize: str = "none"
    _session: Any = field(init=False, repr=False)
    _input: str = field(init=False, repr=False)
    _size: tuple[int, int] = field(init=False, repr=False)   # (height, width) actually fed
    _score_output: str | None = field(init=False, repr=False)
    _map_output: str | None = field(init=False, repr=False)

    def __post_init__(self) -> None:
        import onnxruntime as ort

        self.path = Path(self.path)
        if self.normalize not in ("none", "imagenet"):
            raise ValueError(f"normalize must be 'none' or 'imagenet', got {self.normalize!r}")
        options = ort.SessionOptions()
        options.log_severity_level = 3
        self._session = ort.InferenceSession(str(self.path), options,
                                             providers=["CPUExecutionProvider"])
        inputs = self._session.get_inputs()
        if len(inputs) != 1:
            raise ValueError(f"{self.path}: expected one image input, found "
                             f"{[i.name for i in inputs]}")
        self._input = inputs[0].name
        if self.input_size is None:
            shape = inputs[0].shape
            if len(shape) != 4 or not all(isinstance(d, int) for d in shape[2:]):
                raise ValueError(f"{self.path}: input {self._input} has no fixed size "
                                 f"({shape}); pass input_size=(height, width)")
            self.input_size = (int(shape[2]), int(shape[3]))
        self._size = self.input_size
        outputs = self._session.get_outputs()
        names = [o.name for o in outputs]
        self._score_output = next((n for n in _SCORE_NAMES if n in names), None)
        self._map_output = next((n for n in _MAP_NAMES if n in names), None)
        if self._score_output is None and self._map_output is None:
            raise ValueError(f"{self.path}: no score or anomaly map among outputs {names}")
        if self.score_spread <= 0:
            raise ValueError(f"score_spread must be positive, got {self.score_spread}")

    def _run(self, image_bytes: bytes) -> tuple[float, np.ndarray | None, tuple[int, int]]:
        height, width = self._size
        rgb, original = rgb_pixels(image_bytes, (width, height))
        x = rgb / np.float32(255.0)
        if self.normalize == "imagenet":
            x = (x - IMAGENET_MEAN) / IMAGENET_STD
        wanted = [n for n in (self._score_output, self._map_output) if n]
        results = dict(zip(wanted, self._session.run(wanted, {self._input: x[None].astype(
            np.float32)}), strict=True))
        amap = None
        if self._map_output:
            amap = np.asarray(results[self._map_output], dtype=np.float32)
            amap = amap.reshape(amap.shape[-2:])
        if self._score_output:
            score = float(np.asarray(results[self._score_output]).reshape(-1)[0])
        else:
            assert amap is not None   # __post_init__ insists on a score output or a map output
            score = float(amap.max())
        return score, amap, original

    def score(self, image_bytes: bytes) -> float:
        return self._run(image_bytes)[0]

    def anomaly_map(self, image_bytes: bytes) -> np.ndarray:
        """The model's anomaly map resized to the image's own size (float32 (h, w))."""
        _, amap, (width, height) = self._run(image_bytes)
        if amap is None:
            raise ValueError(f"{self.path} has no anomaly map output")
        return upsample(amap, width, height)

    def anomaly_mask_png(self, image_bytes: bytes) -> bytes:
        return mask_png(self.anomaly_map(image_bytes), self.threshold)

    def detect(self, image_bytes: bytes) -> dict[str, Any]:
        """Verdict in the Lookout for Vision DetectAnomalyResult shape, as DetectorModel.detect."""
        return verdict(self.score(image_bytes), self.threshold, self.score_spread)

    def calibrate(self, normal_images: Sequence[bytes]) -> OnnxAnomalyModel:
        """Set `score_spread` from the scores of normal images the model was not trained on."""
        scores = np.array([self.score(data) for data in normal_images])
        if scores.size:
            self.score_spread = tail_scale(scores)
        return self
