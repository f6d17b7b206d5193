"""The `local` backend's anomaly detector: a per-pixel Gaussian model of normal parts.

    model = fit(normal_images)            # list of image bytes
    model.save("model.npz"); model = load("model.npz")
    model.detect(image_bytes)             # {"Source": {...}, "IsAnomalous": ..., "Confidence": ...}
"""

from .model import DetectorModel, fit

load = DetectorModel.load

__all__ = ["DetectorModel", "fit", "load"]
