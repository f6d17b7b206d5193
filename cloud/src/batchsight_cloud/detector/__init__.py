"""The `local` backend's anomaly detector: aligned normal images, compared patch by patch.

    model = fit(normal_images)            # list of image bytes
    model.save("model.npz"); model = load("model.npz")
    model.detect(image_bytes)             # {"Source": {...}, "IsAnomalous": ..., "Confidence": ...}
"""

from .model import DetectorModel, fit

load = DetectorModel.load

__all__ = ["DetectorModel", "fit", "load"]
