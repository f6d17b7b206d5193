"""The publish gate: a new version may not be worse than the current one on the same images.

Why re-evaluate the current version instead of reading its package's metrics: those were
measured on its own dataset's held-out split, a different set of pictures (a grown dataset, a
new defect type), so comparing the numbers would compare the datasets as much as the models.
Both models are scored here on exactly the candidate's held-out images.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

DEFAULT_MARGIN = 0.02
MEASURES = (("auroc", "AUROC"), ("f1", "F1"))


@dataclass(frozen=True)
class Comparison:
    current_version: str
    candidate: dict[str, Any]    # metrics (evaluation.metrics) of the candidate
    current: dict[str, Any]      # the current version's, on the same images
    margin: float

    def drops(self) -> list[tuple[str, float]]:
        """(measure, how far the candidate is below the current version) for those beyond the margin."""
        return [(label, self.current[key] - self.candidate[key]) for key, label in MEASURES
                if self.current[key] - self.candidate[key] > self.margin]

    def summary(self) -> str:
        images = self.candidate["images"]
        scores = "; ".join(f"{label} {self.candidate[key]:.3f} vs {self.current[key]:.3f}" for key, label in MEASURES)
        return (f"candidate vs current version {self.current_version} on the same {images['normal']} normal and "
                f"{images['anomaly']} anomaly held-out images: {scores}")

    def refusal(self) -> str:
        """Why the gate refuses ("" when it passes)."""
        drops = self.drops()
        if not drops:
            return ""
        worse = " and ".join(f"{label} is {drop:.3f} below" for label, drop in drops)
        return (f"refused: the candidate's {worse} current version {self.current_version}'s (margin "
                f"{self.margin:g}); {self.summary()}; give --force to publish it anyway")
