"""The detector: fit a model on pictures of good parts, score new pictures, save and load it.

    model = fit(normal_images)            # list of image bytes
    model.save("model.npz"); model = load("model.npz")
    model.detect(image_bytes)             # {"Source": {...}, "IsAnomalous": ..., "Confidence": ...}
    fit(normal_images, method="patchcore")   # CNN features (onnxruntime) + memory bank
    model.anomaly_map(image_bytes); model.anomaly_mask_png(image_bytes)
    DetectorModel.from_onnx("anomalib.onnx", threshold=0.5)   # an exported anomalib model

Where things are: fitting.py (fit), model.py (DetectorModel: scoring), model_file.py (the
.npz format), calibration.py (threshold and confidence scale), aligned.py and patchcore.py
(the two methods; patchcore_fit.py fits the second), features.py (decoding, image operations),
verdict.py (the result), onnx_model.py (exported models), evaluation.py, cli.py and serve.py
(`batchsight fit/evaluate/serve`; arguments.py checks their arguments, logs.py is serve's JSON log).
"""

from .fitting import fit
from .model import DetectorModel
from .patchcore import mask_png

load = DetectorModel.load

__all__ = ["DetectorModel", "fit", "load", "mask_png"]
