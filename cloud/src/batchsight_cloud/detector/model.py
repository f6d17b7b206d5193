"""A per-pixel Gaussian model of a normal part: fit, score, calibrate, save, load.

Why this method: a fixed camera looks at the same part over and over, so "normal" is
well described by the mean and spread of every pixel once parts are aligned.  A defect
is a blob of pixels that sit many spreads away from their mean.  Fitting needs a few
dozen normal images and no labels, scoring is two FFTs and a few array passes, and the
whole model is two small arrays: cheap to ship to a gateway and quick to load in a Lambda.

Pipeline for one image: decode + standardise (features.decode) -> align to the mean
image by phase correlation -> |z| per pixel (channels averaged) -> box-filter so a
single noisy pixel cannot fire but a scratch or spot can -> score = max of that map.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import os
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .features import ColorMode, Preprocessing, box_filter, decode, estimate_shift, shift, spectrum

FORMAT = "batchsight-detector"
FORMAT_VERSION = 1
MIN_NORMAL_IMAGES = 3

# Hyperparameters, as fractions of the working size where they are spatial so that a
# model fitted at 256 px behaves like one fitted at 128 px.
_SMOOTHING_FRACTION = 1 / 32   # box filter side: ~defect scale; larger = fewer noise hits, blurrier
_MAX_SHIFT_FRACTION = 1 / 8    # the part may move up to this far between images
_STD_FLOOR_FRACTION = 0.25     # floor (in quadrature) relative to the median pixel spread
_HELD_OUT_FOLDS = 5
_THRESHOLD_SIGMAS = 3.0        # unsupervised threshold: held-out mean + this many spreads

_ARRAYS = ("mean", "std", "held_out_scores")


@dataclass(eq=False)
class DetectorModel:
    """A fitted detector.  Build with `fit()` or `DetectorModel.load()`.

    `threshold` separates normal from anomalous scores.  `score_center` and
    `score_spread` describe the scores of normal images the model did not see
    during fitting (held-out folds); they turn a score into a confidence.
    """

    preprocessing: Preprocessing
    mean: np.ndarray
    std: np.ndarray
    threshold: float
    score_center: float
    score_spread: float
    held_out_scores: np.ndarray
    training_fingerprint: str
    created_at: str
    n_anomalous: int = 0
    _reference: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._reference = spectrum(self.mean)

    @property
    def smoothing(self) -> int:
        return _smoothing(self.preprocessing.working_size)

    @property
    def max_shift(self) -> int:
        return _max_shift(self.preprocessing.working_size)

    def score(self, image_bytes: bytes) -> float:
        """Raw anomaly score: the largest smoothed |z| over the aligned image."""
        return self._score_array(decode(image_bytes, self.preprocessing))

    def detect(self, image_bytes: bytes) -> dict[str, Any]:
        """Verdict in the Lookout for Vision DetectAnomalyResult shape.

        Confidence is the confidence in the verdict, not in "anomalous": the distance of
        the score from the threshold in units of the held-out normal score spread, put
        through the normal CDF.  A score on the threshold gives 0.5; a score three
        spreads away on either side gives ~0.999.
        """
        score = self.score(image_bytes)
        distance = abs(score - self.threshold) / self.score_spread
        return {
            "Source": {"Type": "direct"},
            "IsAnomalous": bool(score > self.threshold),
            "Confidence": round(0.5 * (1.0 + math.erf(distance / math.sqrt(2.0))), 6),
        }

    def save(self, path: str | Path) -> None:
        """Write the model as one .npz file (arrays + a JSON metadata string), atomically."""
        path = Path(path)
        metadata = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "preprocessing": {
                "working_size": self.preprocessing.working_size,
                "color": self.preprocessing.color,
                "exif_transpose": True,
                "resample": "bilinear",
                "standardise": "per-image-channel",
                "align": "phase-correlation",
                "smoothing": self.smoothing,
                "max_shift": self.max_shift,
            },
            "threshold": self.threshold,
            "calibration": {
                "score_center": self.score_center,
                "score_spread": self.score_spread,
                "n_normal": int(self.held_out_scores.size),
                "n_anomalous": self.n_anomalous,
            },
            "training_fingerprint": self.training_fingerprint,
            "created_at": self.created_at,
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as fh:
                np.savez(fh, metadata=np.array(json.dumps(metadata)),
                         mean=self.mean, std=self.std, held_out_scores=self.held_out_scores)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    @classmethod
    def load(cls, path: str | Path) -> DetectorModel:
        """Read a model written by `save()`; ValueError if it is not one we can use."""
        try:
            with np.load(path, allow_pickle=False) as npz:
                missing = {"metadata", *_ARRAYS} - set(npz.files)
                if missing:
                    raise ValueError(f"missing entries {sorted(missing)}")
                metadata = json.loads(str(npz["metadata"]))
                arrays = {name: npz[name] for name in _ARRAYS}
        except (OSError, EOFError, zipfile.BadZipFile, json.JSONDecodeError, ValueError) as exc:
            raise ValueError(f"{path}: not a readable {FORMAT} model file: {exc}") from exc
        return cls._from_parts(path, metadata, arrays)

    @classmethod
    def _from_parts(cls, path: str | Path, metadata: Any, arrays: dict[str, np.ndarray]) -> DetectorModel:
        if not isinstance(metadata, dict) or metadata.get("format") != FORMAT:
            raise ValueError(f"{path}: not a {FORMAT} model file")
        version = metadata.get("format_version")
        if version != FORMAT_VERSION:
            raise ValueError(f"{path}: unsupported {FORMAT} format version {version!r} "
                             f"(this code reads version {FORMAT_VERSION}); refit the model")
        try:
            prep_meta = metadata["preprocessing"]
            prep = Preprocessing(int(prep_meta["working_size"]), prep_meta["color"])
            calibration = metadata["calibration"]
            model = cls(
                preprocessing=prep,
                mean=arrays["mean"].astype(np.float32),
                std=arrays["std"].astype(np.float32),
                threshold=float(metadata["threshold"]),
                score_center=float(calibration["score_center"]),
                score_spread=float(calibration["score_spread"]),
                held_out_scores=arrays["held_out_scores"].astype(np.float64),
                training_fingerprint=str(metadata["training_fingerprint"]),
                created_at=str(metadata["created_at"]),
                n_anomalous=int(calibration["n_anomalous"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{path}: corrupt {FORMAT} metadata: {exc}") from exc
        expected = (prep.channels, prep.working_size, prep.working_size)
        if model.mean.shape != expected or model.std.shape != expected or model.score_spread <= 0:
            raise ValueError(f"{path}: corrupt {FORMAT} model: arrays do not match the metadata")
        return model

    def _score_array(self, image: np.ndarray) -> float:
        return _score(image, self.mean, self.std, self._reference, self.max_shift, self.smoothing)


def fit(
    normal_images: Sequence[bytes],
    *,
    anomalous_images: Sequence[bytes] | None = None,
    working_size: int = 128,
    color: ColorMode = "gray",
) -> DetectorModel:
    """Fit a detector on normal images; anomalous examples, if given, only set the threshold.

    The threshold is set on scores of normal images *held out* of the fit (k folds): a
    model scores its own training images lower than new ones, so a threshold from
    training scores would flag too many good parts.  With anomalous examples the
    threshold maximises F1 between held-out normals and anomalies; without, it is the
    held-out mean plus a few spreads.
    """
    prep = Preprocessing(working_size, color)
    if len(normal_images) < MIN_NORMAL_IMAGES:
        raise ValueError(f"need at least {MIN_NORMAL_IMAGES} normal images to fit, got {len(normal_images)}")
    normals = np.stack(_decode_all(normal_images, prep, "normal"))
    mean, std = _fit_pixels(normals, prep)
    held_out = _held_out_scores(normals, prep)
    center = float(held_out.mean())
    spread = max(float(held_out.std(ddof=1)), 1e-3 * abs(center), 1e-6)
    anomalous = list(anomalous_images or [])
    if anomalous:
        reference, max_shift, k = spectrum(mean), _max_shift(working_size), _smoothing(working_size)
        anomaly_scores = np.array([_score(img, mean, std, reference, max_shift, k)
                                   for img in _decode_all(anomalous, prep, "anomalous")])
        threshold = best_f1_threshold(held_out, anomaly_scores)
    else:
        threshold = center + _THRESHOLD_SIGMAS * spread
    return DetectorModel(
        preprocessing=prep,
        mean=mean,
        std=std,
        threshold=float(threshold),
        score_center=center,
        score_spread=spread,
        held_out_scores=held_out,
        training_fingerprint=fingerprint(normal_images),
        created_at=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        n_anomalous=len(anomalous),
    )


def fingerprint(images: Sequence[bytes]) -> str:
    """sha256 over the sorted per-image sha256s: identifies a training set regardless of order."""
    digests = sorted(hashlib.sha256(data).hexdigest() for data in images)
    return hashlib.sha256("\n".join(digests).encode()).hexdigest()


def best_f1_threshold(normal_scores: np.ndarray, anomaly_scores: np.ndarray) -> float:
    """Threshold (score > threshold = anomalous) maximising F1; ties go to the widest gap.

    Candidates are midpoints between neighbouring scores, so the threshold sits in the
    middle of a gap rather than on top of an example.
    """
    scores = np.concatenate([normal_scores, anomaly_scores])
    is_anomaly = np.concatenate([np.zeros(normal_scores.size, bool), np.ones(anomaly_scores.size, bool)])
    order = np.argsort(scores, kind="stable")
    scores, is_anomaly = scores[order], is_anomaly[order]
    candidates = np.concatenate([[scores[0] - 1.0], (scores[:-1] + scores[1:]) / 2])
    gaps = np.concatenate([[1.0], np.diff(scores)])
    # Threshold i flags everything from sorted position i on as anomalous.
    true_pos = np.cumsum(is_anomaly[::-1])[::-1]
    flagged = np.arange(scores.size, 0, -1)
    f1 = 2 * true_pos / (flagged + anomaly_scores.size)
    best = np.lexsort((gaps, f1))[-1]
    return float(candidates[best])


def _decode_all(images: Sequence[bytes], prep: Preprocessing, kind: str) -> list[np.ndarray]:
    decoded = []
    for index, data in enumerate(images):
        try:
            decoded.append(decode(data, prep))
        except ValueError as exc:
            raise ValueError(f"{kind} image {index}: {exc}") from exc
    return decoded


def _smoothing(working_size: int) -> int:
    return max(3, round(working_size * _SMOOTHING_FRACTION)) | 1


def _max_shift(working_size: int) -> int:
    return max(1, round(working_size * _MAX_SHIFT_FRACTION))


def _fit_pixels(images: np.ndarray, prep: Preprocessing) -> tuple[np.ndarray, np.ndarray]:
    """Per-pixel mean and spread of aligned images.

    Alignment runs twice: first onto one image, then onto the mean of that result,
    which is a less noisy reference.  The variance is box-filtered because a few dozen
    images give a noisy per-pixel estimate, and floored (in quadrature) so a pixel that
    happened not to vary in training does not turn ordinary noise into a huge |z|.
    """
    max_shift, k = _max_shift(prep.working_size), _smoothing(prep.working_size)
    reference = images[0]
    for _ in range(2):
        ref_spectrum = spectrum(reference)
        aligned = np.stack([shift(img, *estimate_shift(img, ref_spectrum, max_shift)) for img in images])
        reference = aligned.mean(axis=0)
    variance = box_filter(aligned.var(axis=0, ddof=1), k)
    floor = _STD_FLOOR_FRACTION * float(np.median(np.sqrt(variance)))
    std = np.sqrt(variance + max(floor, 1e-3) ** 2)
    return reference.astype(np.float32), std.astype(np.float32)


def _held_out_scores(images: np.ndarray, prep: Preprocessing) -> np.ndarray:
    """Score every image with a model fitted on the other folds."""
    n = len(images)
    folds = min(_HELD_OUT_FOLDS, n)
    max_shift, k = _max_shift(prep.working_size), _smoothing(prep.working_size)
    scores = np.empty(n)
    for fold in range(folds):
        held = np.arange(n) % folds == fold
        mean, std = _fit_pixels(images[~held], prep)
        reference = spectrum(mean)
        scores[held] = [_score(img, mean, std, reference, max_shift, k) for img in images[held]]
    return scores


def _score(image: np.ndarray, mean: np.ndarray, std: np.ndarray, reference: np.ndarray,
           max_shift: int, smoothing: int) -> float:
    aligned = shift(image, *estimate_shift(image, reference, max_shift))
    z = (np.abs(aligned - mean) / std).mean(axis=0)
    return float(box_filter(z, smoothing).max())
