"""fit(): a DetectorModel from pictures of good parts (and, if there are any, of bad ones).

Why a module of its own: fitting runs once, off the line (a person's machine, the cloud),
while the model it makes scores every image on the gateway.  This is where the two methods'
fitting steps (aligned.py, patchcore_fit.py) meet the threshold and confidence calibration
(calibration.py) that both end with.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Sequence
from typing import TypedDict

import numpy as np

from . import aligned, calibration
from .aligned import MAX_BANK_IMAGES, NormalBank
from .features import ColorMode, Preprocessing, decode, decode_each
from .model import DetectorModel
from .model_file import METHODS
from .patchcore_fit import PATCHCORE_CORESET_RATIO, PATCHCORE_MAX_MEMORY, fit_memory

MIN_NORMAL_IMAGES = 3


class _Calibration(TypedDict):
    """The DetectorModel fields both methods set alike, from their held-out scores."""

    threshold: float
    score_center: float
    score_spread: float
    held_out_scores: np.ndarray
    training_fingerprint: str
    created_at: str
    n_anomalous: int


def fit(
    normal_images: Sequence[bytes],
    *,
    anomalous_images: Sequence[bytes] | None = None,
    working_size: int | None = None,
    color: ColorMode = "gray",
    max_bank_images: int = MAX_BANK_IMAGES,
    method: str = "aligned",
    coreset_ratio: float = PATCHCORE_CORESET_RATIO,
    max_memory_patches: int = PATCHCORE_MAX_MEMORY,
    augment: str | Sequence[str] = "auto",
) -> DetectorModel:
    """Fit a detector on normal images; anomalous examples, if given, only set the threshold.

    `max_bank_images` trades accuracy on parts with much legitimate variation for
    scoring time, which grows linearly with it (about 0.2 ms per stored image at 128 px
    gray).

    The threshold is set on scores of normal images *held out* of the fit (k folds for
    "aligned", leave-one-image-out for "patchcore"): a nearest-neighbour model scores its
    own training images at zero, so a threshold from training scores would flag most good
    parts.  With anomalous examples the threshold maximises F1 between held-out normals
    and anomalies; without, it is the score a Gumbel law fitted to the held-out scores
    (`calibration.gumbel_fit`) exceeds with probability calibration.FALSE_ALARM_RATE
    (`calibration.unsupervised_threshold`).  Scores are maxima over an image, so their upper
    tail is long and a Gaussian "mean + 3 sigma" rule raises false alarms.  Deliberately not
    "highest training score plus a margin" either: one defective part slipped into the
    training set would then lift the threshold above real defects.

    `method`: "aligned" (default; numpy only, `working_size` default 128, `color`,
    `max_bank_images` apply) or "patchcore" (onnxruntime features + coreset memory bank;
    `working_size` is the network input's long side, default from the images' size, see
    patchcore.input_size; the input is always RGB; `coreset_ratio` of all normal patches,
    transformed copies included, are kept, at most `max_memory_patches`).

    `augment` (patchcore): "auto" tries each of patchcore.TRANSFORMS (flips, rotations by
    180 and, for square inputs, 90 degrees) and adds the transformed normal images to the
    memory bank when the plain bank cannot tell them from held-out normal images (a
    transformed good part outscores a held-out good part in at most
    patchcore_fit._SYMMETRY_AUROC of pairs): a round casting turned over is still a good
    casting, a circuit board is not.  The check needs normal images only; its results are
    saved in the model file (memory.augmentation_check).  "none", or a list of transform
    names, skips the check.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if len(normal_images) < MIN_NORMAL_IMAGES:
        raise ValueError(f"need at least {MIN_NORMAL_IMAGES} normal images to fit, "
                         f"got {len(normal_images)}")
    if method == "patchcore":
        return _fit_patchcore(normal_images, anomalous_images or [], working_size,
                              coreset_ratio, max_memory_patches, augment)
    return _fit_aligned(normal_images, anomalous_images or [], working_size, color,
                        max_bank_images)


def fingerprint(images: Sequence[bytes]) -> str:
    """sha256 over the sorted per-image sha256s: identifies a training set regardless of order."""
    digests = sorted(hashlib.sha256(data).hexdigest() for data in images)
    return hashlib.sha256("\n".join(digests).encode()).hexdigest()


def _fit_aligned(normal_images: Sequence[bytes], anomalous_images: Sequence[bytes],
                 working_size: int | None, color: ColorMode, max_bank_images: int) -> DetectorModel:
    """fit() for method="aligned": a bank of the normal images, held-out scores by k folds."""
    prep = Preprocessing(working_size or 128, color)
    if max_bank_images < 1:
        raise ValueError(f"max_bank_images must be at least 1, got {max_bank_images}")

    def decoded(images: Sequence[bytes], kind: str) -> list[np.ndarray]:
        return decode_each(images, kind, lambda data: decode(data, prep))

    normals = np.stack(decoded(normal_images, "normal"))
    bank = NormalBank.fit(normals, max_bank_images)
    held_out = aligned.held_out_scores(normals, max_bank_images)
    anomaly_scores = np.array([bank.score(img) for img in decoded(anomalous_images, "anomalous")])
    return DetectorModel(preprocessing=prep, bank=bank,
                         **_calibration(held_out, anomaly_scores, normal_images))


def _fit_patchcore(normal_images: Sequence[bytes], anomalous_images: Sequence[bytes],
                   working_size: int | None, coreset_ratio: float, max_memory_patches: int,
                   augment: str | Sequence[str]) -> DetectorModel:
    """fit() for method="patchcore" (see patchcore_fit.py)."""
    memory = fit_memory(normal_images, anomalous_images, working_size, coreset_ratio,
                        max_memory_patches, augment)
    return DetectorModel(preprocessing=Preprocessing(max(memory.bank.size), "rgb"), bank=memory.bank,
                         method="patchcore", augmentation=memory.augmentation,
                         augmentation_check=memory.augmentation_check,
                         **_calibration(memory.held_out, memory.anomaly_scores, normal_images))


def _calibration(held_out: np.ndarray, anomaly_scores: np.ndarray,
                 normal_images: Sequence[bytes]) -> _Calibration:
    """What both methods end with: the threshold and the confidence scale, from the
    held-out normal scores (and the anomalous examples' scores, if any)."""
    return {
        "threshold": calibration.threshold(held_out, anomaly_scores),
        "score_center": float(np.median(held_out)),
        "score_spread": calibration.gumbel_fit(held_out)[1],
        "held_out_scores": held_out,
        "training_fingerprint": fingerprint(normal_images),
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "n_anomalous": len(anomaly_scores),
    }
