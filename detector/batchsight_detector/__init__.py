"""The `local` backend's anomaly detector: aligned normal images, compared patch by patch.

    model = fit(normal_images)            # list of image bytes
    model.save("model.npz"); model = load("model.npz")
    model.detect(image_bytes)             # {"Source": {...}, "IsAnomalous": ..., "Confidence": ...}
    fit(normal_images, method="patchcore")   # CNN features (onnxruntime) + memory bank
    model.anomaly_map(image_bytes); model.anomaly_mask_png(image_bytes)
    DetectorModel.from_onnx("anomalib.onnx", threshold=0.5)   # an exported anomalib model
"""

from .model import DetectorModel, fit
from .patchcore import mask_png

load = DetectorModel.load

__all__ = ["DetectorModel", "fit", "load", "mask_png"]
