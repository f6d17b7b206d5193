"""The "aligned" method's normal bank: aligned pictures of good parts, compared patch by patch.

Why this method: a fixed camera looks at the same part over and over, so "normal" is
well described by a few dozen aligned pictures of good parts.  A defect is a patch of
the new image that matches the same patch of *none* of them.  Comparing against each
stored image (nearest neighbour) rather than against one mean image keeps legitimate
variation that is not Gaussian (a lead bent one way or the other, a cable that lies
left or right) from looking like a defect: on the circuit-board sample set a per-pixel
Gaussian z-score reached AUROC 0.86, this 0.94.  Fitting needs no labels, scoring is a
few array passes per stored image, and everything is numpy.

Scoring one image: decode + standardise (features.decode) -> align to the mean normal
image by phase correlation -> per stored image, |difference| / per-pixel spread
(channels averaged), box-filtered into a patch distance -> per pixel, the minimum over
stored images -> score = the maximum over the image.

The other method, PatchCore (patchcore.py), needs no alignment and is the better choice for
real photographs; this one needs nothing but numpy.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .features import box_filter, estimate_shift, shift, spectrum

MAX_BANK_IMAGES = 64   # default cap: scoring time grows linearly with the stored images

# Spatial hyperparameters are fractions of the working size, so a model fitted at
# 256 px behaves like one fitted at 128 px.  Values chosen on the circuit-board set.
_SMOOTHING_FRACTION = 1 / 26   # patch side: about the size of the smallest defect worth reporting
_MAX_SHIFT_FRACTION = 1 / 8    # the part may move up to this far between images
_STD_FLOOR_FACTOR = 2.0        # spread floor, in medians of the spread (see _pixel_spread)
_HELD_OUT_FOLDS = 5


@dataclass(eq=False)
class NormalBank:
    """Aligned normal images plus their mean (the alignment reference) and per-pixel spread."""

    mean: np.ndarray    # (channels, h, w)
    std: np.ndarray     # (channels, h, w)
    images: np.ndarray  # (n, channels, h, w), aligned to `mean`
    _reference: np.ndarray = field(init=False, repr=False)
    _inverse_std: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._reference = spectrum(self.mean)
        self._inverse_std = (1.0 / self.std).astype(np.float32)

    @property
    def working_size(self) -> int:
        return int(self.mean.shape[-1])

    @classmethod
    def fit(cls, images: np.ndarray, max_images: int = MAX_BANK_IMAGES) -> NormalBank:
        """Align `images` (n, channels, h, w) to each other and keep the `max_images` most diverse.

        Alignment runs twice: first onto one image, then onto the mean of that result,
        which is a less noisy reference.
        """
        limit = max_shift(images.shape[-1])
        reference = images[0]
        for _ in range(2):
            ref_spectrum = spectrum(reference)
            aligned = np.stack(
                [shift(img, *estimate_shift(img, ref_spectrum, limit)) for img in images]
            )
            reference = aligned.mean(axis=0)
        std = _pixel_spread(aligned)
        kept = aligned[_most_diverse(aligned, std, max_images)]
        return cls(mean=reference.astype(np.float32), std=std, images=kept.astype(np.float32))

    def score(self, image: np.ndarray) -> float:
        """Largest patch distance from the image to its nearest stored normal image."""
        return float(self.distance_map(image)[0].max())

    def distance_map(self, image: np.ndarray) -> tuple[np.ndarray, tuple[float, float]]:
        """Per-pixel patch distance to the nearest stored image, in aligned coordinates,
        and the (dy, dx) shift that aligned the image."""
        offset = estimate_shift(image, self._reference, max_shift(self.working_size))
        aligned = shift(image, *offset)
        diff = self.images - aligned
        np.abs(diff, out=diff)
        diff *= self._inverse_std
        distances = diff.mean(axis=1) if diff.shape[1] > 1 else diff[:, 0]
        patches = box_filter(distances, smoothing(self.working_size))
        return patches.min(axis=0), offset


def held_out_scores(images: np.ndarray, max_bank_images: int) -> np.ndarray:
    """Score every image with a bank fitted on the other folds.

    A nearest-neighbour bank scores its own images at zero, so a threshold needs scores of
    normal images it has not seen.
    """
    n = len(images)
    folds = min(_HELD_OUT_FOLDS, n)
    scores = np.empty(n)
    for fold in range(folds):
        held = np.arange(n) % folds == fold
        bank = NormalBank.fit(images[~held], max_bank_images)
        scores[held] = [bank.score(img) for img in images[held]]
    return scores


def smoothing(working_size: int) -> int:
    """Side of the (odd) box that turns pixel differences into patch distances."""
    return max(3, round(working_size * _SMOOTHING_FRACTION)) | 1


def max_shift(working_size: int) -> int:
    """Largest shift, in pixels, alignment may find between an image and the reference."""
    return max(1, round(working_size * _MAX_SHIFT_FRACTION))


def _pixel_spread(aligned: np.ndarray) -> np.ndarray:
    """Per-pixel spread of aligned normal images, used to weight differences.

    The variance is box-filtered because a few dozen images give a noisy per-pixel
    estimate, and floored (in quadrature) at a few times its median: without the floor
    a pixel that happened not to vary in training (a flat background) turns every
    speck of dust into a huge score.  The result mostly down-weights the places that
    do vary between good parts (edges, reflections, flexible parts).
    """
    variance = box_filter(aligned.var(axis=0, ddof=1), smoothing(aligned.shape[-1]))
    floor = max(_STD_FLOOR_FACTOR * float(np.median(np.sqrt(variance))), 1e-3)
    return np.sqrt(variance + floor ** 2).astype(np.float32)


def _most_diverse(aligned: np.ndarray, std: np.ndarray, limit: int) -> np.ndarray:
    """Indices of at most `limit` images chosen by greedy farthest-point selection.

    Nearest-neighbour scoring only needs the bank to *cover* normal variation; many
    near-duplicates add time, not accuracy.  Starts from the most typical image.
    """
    n = len(aligned)
    if n <= limit:
        return np.arange(n)
    weights = 1.0 / std

    def distances_to(index: int) -> np.ndarray:
        return (np.abs(aligned - aligned[index]) * weights).mean(axis=(1, 2, 3))

    mean = aligned.mean(axis=0)
    chosen = [int(np.argmin((np.abs(aligned - mean) * weights).mean(axis=(1, 2, 3))))]
    nearest = distances_to(chosen[0])
    while len(chosen) < limit:
        chosen.append(int(np.argmax(nearest)))
        nearest = np.minimum(nearest, distances_to(chosen[-1]))
    return np.array(sorted(chosen))
