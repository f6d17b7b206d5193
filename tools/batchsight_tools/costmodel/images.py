"""What one image weighs and what judging it takes: the inputs a deployment measures for itself."""
from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Images:
    """The images of a line and the detector that judges them.

    ``detector_ms`` is the detector's time for one image on one vCPU (``batchsight evaluate``
    prints it, bench/detector_eval.py too); the default of 50 ms is the issue's "about ten
    CPU-minutes for 10,623 images" (56 ms each), near NOTES' 44 ms p50 measured on 2 cores.
    """

    image_bytes: int = 200_000  # a 2-megapixel JPEG
    detector_ms: float = 50.0
    anomaly_rate: float = 0.02  # anomalous images also get a mask (a second pass and one more PUT)
    result_bytes: int = 1_200  # the result document (contracts: result JSON)
    mask_bytes: int = 6_000  # the anomaly mask PNG of an anomalous image

    @property
    def detector_seconds(self) -> float:
        return self.detector_ms / 1000.0

    def anomalous(self, index: int) -> bool:
        """Image ``index`` is one of the anomalous ones, spread evenly: the exact rate, no draw."""
        return math.floor((index + 1) * self.anomaly_rate) > math.floor(index * self.anomaly_rate)

    def seconds_on(self, vcpus: float) -> float:
        """One image's detection on ``vcpus`` (a fraction of a vCPU stretches it; more do not shorten
        one image: the model judges one image on one core)."""
        return self.detector_seconds / min(1.0, vcpus)


DEFAULT_IMAGES = Images()
