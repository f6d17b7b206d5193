"""The detector: a memory of aligned normal images; fit, score, calibrate, save, load.

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

A second method, `fit(..., method="patchcore")` (patchcore.py), describes patches with a
pretrained CNN run by onnxruntime and compares them with a coreset memory bank of normal
patches; it needs no alignment and is the better choice for real photographs.  Both
methods share the threshold rule, the calibrated Confidence and the single-file format.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import math
import os
import tempfile
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import patchcore
from .features import ColorMode, Preprocessing, box_filter, decode, estimate_shift, shift, spectrum
from .patchcore import PatchMemory, mask_png

FORMAT = "batchsight-detector"
FORMAT_VERSION = 1            # written for method "aligned": files older code can still read
PATCHCORE_FORMAT_VERSION = 2  # written for method "patchcore" (adds "method", "memory")
READABLE_VERSIONS = (1, 2)
METHODS = ("aligned", "patchcore")
MIN_NORMAL_IMAGES = 3
MAX_BANK_IMAGES = 64   # default cap: scoring time grows linearly with the stored images

# Spatial hyperparameters are fractions of the working size, so a model fitted at
# 256 px behaves like one fitted at 128 px.  Values chosen on the circuit-board set.
_SMOOTHING_FRACTION = 1 / 26   # patch side: about the size of the smallest defect worth reporting
_MAX_SHIFT_FRACTION = 1 / 8    # the part may move up to this far between images
_STD_FLOOR_FACTOR = 2.0        # spread floor, in medians of the spread (see _pixel_spread)
_HELD_OUT_FOLDS = 5
_FALSE_ALARM_RATE = 0.002      # unsupervised threshold target, per image

_ARRAYS = ("mean", "std", "bank", "held_out_scores")
_PATCHCORE_ARRAYS = ("memory", "held_out_scores")
PATCHCORE_CORESET_RATIO = 0.1
PATCHCORE_MAX_MEMORY = 6144   # cap on memory patches: scoring time grows linearly with it


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
        max_shift = _max_shift(images.shape[-1])
        reference = images[0]
        for _ in range(2):
            ref_spectrum = spectrum(reference)
            aligned = np.stack(
                [shift(img, *estimate_shift(img, ref_spectrum, max_shift)) for img in images]
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
        offset = estimate_shift(image, self._reference, _max_shift(self.working_size))
        aligned = shift(image, *offset)
        diff = self.images - aligned
        np.abs(diff, out=diff)
        diff *= self._inverse_std
        distances = diff.mean(axis=1) if diff.shape[1] > 1 else diff[:, 0]
        patches = box_filter(distances, _smoothing(self.working_size))
        return patches.min(axis=0), offset


@dataclass(eq=False)
class DetectorModel:
    """A fitted detector.  Build with `fit()` or `DetectorModel.load()`.

    `threshold` separates normal from anomalous scores.  `score_center` (median) and
    `score_spread` (see `tail_scale`) describe the scores of normal images the model did
    not see during fitting (held-out folds); they turn a score into a confidence.
    """

    preprocessing: Preprocessing
    bank: NormalBank | PatchMemory
    threshold: float
    score_center: float
    score_spread: float
    held_out_scores: np.ndarray
    training_fingerprint: str
    created_at: str
    n_anomalous: int = 0
    method: str = "aligned"
    extractor_path: str | None = None   # patchcore: the ONNX file (None = the shipped one)

    def score(self, image_bytes: bytes) -> float:
        """Raw anomaly score (0 = identical to a stored normal image; higher = stranger)."""
        if isinstance(self.bank, PatchMemory):
            return float(self._patch_distances(image_bytes)[0].max())
        return self.bank.score(decode(image_bytes, self.preprocessing))

    def anomaly_map(self, image_bytes: bytes) -> np.ndarray:
        """Per-pixel anomaly values at the image's own (EXIF-upright) size, float32 (h, w).

        On the same scale as `score()` and `threshold`: the score is the map's maximum (up
        to interpolation), and `map > threshold` marks the anomalous region.
        """
        if isinstance(self.bank, PatchMemory):
            distances, (width, height) = self._patch_distances(image_bytes)
            return patchcore.upsample(distances, width, height)
        image = decode(image_bytes, self.preprocessing)
        distances, (dy, dx) = self.bank.distance_map(image)
        distances = shift(distances[None], -dy, -dx)[0]   # back to the image's own coordinates
        width, height = _image_size(image_bytes)
        return patchcore.upsample(distances, width, height)

    def anomaly_mask_png(self, image_bytes: bytes) -> bytes:
        """PNG mask (255 = anomalous) of `anomaly_map() > threshold`, for the result's mask object."""
        return mask_png(self.anomaly_map(image_bytes), self.threshold)

    def _patch_distances(self, image_bytes: bytes) -> tuple[np.ndarray, tuple[int, int]]:
        assert isinstance(self.bank, PatchMemory)
        rgb, original = patchcore.rgb_pixels(image_bytes, self.bank.size)
        features = patchcore.extractor(self.extractor_path)(rgb)
        return self.bank.distance_map(features), original

    def detect(self, image_bytes: bytes) -> dict[str, Any]:
        """Verdict in the Lookout for Vision DetectAnomalyResult shape.

        Confidence is the confidence in the verdict, not in "anomalous": the distance of
        the score from the threshold in units of the held-out score spread, through a
        logistic.  The logistic, not a normal CDF, because scores have an exponential
        tail: its odds fall by e per spread, as the tail's probability does.  A score on
        the threshold gives 0.5, one spread away 0.73, three 0.95; a typical good part
        under the unsupervised threshold gets 1 - _FALSE_ALARM_RATE * 2, about 0.996.
        """
        score = self.score(image_bytes)
        distance = abs(score - self.threshold) / self.score_spread
        return {
            "Source": {"Type": "direct"},
            "IsAnomalous": bool(score > self.threshold),
            "Confidence": round(1.0 / (1.0 + math.exp(-distance)), 6),
        }

    def save(self, path: str | Path) -> None:
        """Write the model as one .npz file (arrays + a JSON metadata string), atomically."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as fh:
                if isinstance(self.bank, PatchMemory):
                    np.savez(fh, metadata=np.array(json.dumps(self._metadata())),
                             memory=self.bank.patches, held_out_scores=self.held_out_scores)
                else:
                    np.savez(fh, metadata=np.array(json.dumps(self._metadata())),
                             mean=self.bank.mean, std=self.bank.std, bank=self.bank.images,
                             held_out_scores=self.held_out_scores)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    @staticmethod
    def from_onnx(path: str | Path, threshold: float = 0.5,
                  input_size: tuple[int, int] | None = None, **options: Any) -> Any:
        """A model exported to ONNX elsewhere (anomalib: image in, score and map out).

        Returns an `onnx_model.OnnxAnomalyModel`, which has this class's detect(), score(),
        anomaly_map() and anomaly_mask_png(); options: score_spread, normalize.
        """
        from .onnx_model import OnnxAnomalyModel

        return OnnxAnomalyModel(Path(path), threshold=threshold, input_size=input_size,
                                **options)

    @classmethod
    def load(cls, path: str | Path) -> DetectorModel:
        """Read a model written by `save()`; ValueError if it is not one this code can use."""
        with open(path, "rb") as fh:  # a missing file stays FileNotFoundError: not a format problem
            try:
                with np.load(fh, allow_pickle=False) as npz:
                    if "metadata" not in npz.files:
                        raise ValueError("missing entries ['metadata']")
                    metadata = json.loads(str(npz["metadata"]))
                    names = (_PATCHCORE_ARRAYS if isinstance(metadata, dict)
                             and metadata.get("method") == "patchcore" else _ARRAYS)
                    missing = set(names) - set(npz.files)
                    if missing:
                        raise ValueError(f"missing entries {sorted(missing)}")
                    arrays = {name: npz[name] for name in names}
            except (OSError, EOFError, zipfile.BadZipFile, json.JSONDecodeError, ValueError) as exc:
                raise ValueError(f"{path}: not a readable {FORMAT} model file: {exc}") from exc
        return cls._from_parts(path, metadata, arrays)

    def _metadata(self) -> dict[str, Any]:
        size = self.preprocessing.working_size
        if isinstance(self.bank, PatchMemory):
            ex = patchcore.extractor(self.extractor_path)
            head: dict[str, Any] = {
                "format": FORMAT,
                "format_version": PATCHCORE_FORMAT_VERSION,
                "method": "patchcore",
                "preprocessing": {
                    "working_size": size,
                    "input_width": self.bank.size[0],
                    "input_height": self.bank.size[1],
                    "color": "rgb",
                    "exif_transpose": True,
                    "resample": "bilinear",
                },
                "features": {
                    "extractor": ex.path.name,
                    "sha256": ex.sha256,
                    "channels": self.bank.channels,
                    **{k: ex.info[k] for k in ("backbone", "taps", "stride") if k in ex.info},
                },
                "memory": {"patches": int(len(self.bank.patches)),
                           "selection": "greedy k-center coreset",
                           "score": "max over patches of the distance to the nearest memory patch"},
            }
        else:
            head = {
                "format": FORMAT,
                "format_version": FORMAT_VERSION,
                "preprocessing": {
                    "working_size": size,
                    "color": self.preprocessing.color,
                    "exif_transpose": True,
                    "resample": "bilinear",
                    "standardise": "per-image-channel",
                    "align": "phase-correlation",
                    "max_shift": _max_shift(size),
                    "patch": _smoothing(size),
                },
            }
        return {
            **head,
            "threshold": self.threshold,
            "threshold_rule": (
                "max F1, held-out normals vs anomalous examples" if self.n_anomalous
                else f"exponential tail of held-out normals, false-alarm rate {_FALSE_ALARM_RATE}"
            ),
            "calibration": {
                "confidence": "logistic of |score - threshold| / score_spread",
                "score_center": self.score_center,
                "score_spread": self.score_spread,
                "n_normal": int(self.held_out_scores.size),
                "n_anomalous": self.n_anomalous,
            },
            "training_fingerprint": self.training_fingerprint,
            "created_at": self.created_at,
        }

    @classmethod
    def _from_parts(
        cls, path: str | Path, metadata: Any, arrays: dict[str, np.ndarray]
    ) -> DetectorModel:
        if not isinstance(metadata, dict) or metadata.get("format") != FORMAT:
            raise ValueError(f"{path}: not a {FORMAT} model file")
        version = metadata.get("format_version")
        if version not in READABLE_VERSIONS:
            raise ValueError(f"{path}: unsupported {FORMAT} format version {version!r} "
                             f"(this code reads versions {READABLE_VERSIONS}); refit the model")
        method = metadata.get("method", "aligned")
        if method not in METHODS:
            raise ValueError(f"{path}: unknown detector method {method!r}; refit the model")
        try:
            prep_meta, calibration = metadata["preprocessing"], metadata["calibration"]
            prep = Preprocessing(int(prep_meta["working_size"]), prep_meta["color"])
            fields = {
                "threshold": float(metadata["threshold"]),
                "score_center": float(calibration["score_center"]),
                "score_spread": float(calibration["score_spread"]),
                "training_fingerprint": str(metadata["training_fingerprint"]),
                "created_at": str(metadata["created_at"]),
                "n_anomalous": int(calibration["n_anomalous"]),
            }
            if method == "patchcore":
                size = (int(prep_meta["input_width"]), int(prep_meta["input_height"]))
                memory = arrays["memory"].astype(np.float32)
                held_out = arrays["held_out_scores"].astype(np.float64)
                features = dict(metadata["features"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{path}: corrupt {FORMAT} model: {exc}") from exc
        if method == "patchcore":
            return cls._patchcore_from_parts(path, features, size, memory, held_out, prep, fields)
        try:
            mean, std, images = (arrays[key].astype(np.float32) for key in ("mean", "std", "bank"))
            held_out = arrays["held_out_scores"].astype(np.float64)
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{path}: corrupt {FORMAT} model: {exc}") from exc
        shape = (prep.channels, prep.working_size, prep.working_size)
        if (mean.shape != shape or std.shape != shape or images.shape[1:] != shape
                or len(images) == 0 or not np.all(std > 0) or fields["score_spread"] <= 0):
            raise ValueError(f"{path}: corrupt {FORMAT} model: arrays do not match the metadata")
        return cls(preprocessing=prep, bank=NormalBank(mean=mean, std=std, images=images),
                   held_out_scores=held_out, **fields)

    @classmethod
    def _patchcore_from_parts(cls, path: str | Path, features: dict[str, Any],
                              size: tuple[int, int], memory: np.ndarray, held_out: np.ndarray,
                              prep: Preprocessing, fields: dict[str, Any]) -> DetectorModel:
        ex = patchcore.extractor()
        if features.get("sha256") != ex.sha256:
            raise ValueError(f"{path}: fitted with feature extractor {features.get('extractor')} "
                             f"sha256 {str(features.get('sha256'))[:12]}, this code ships "
                             f"{ex.sha256[:12]}; refit the model")
        if (memory.ndim != 2 or len(memory) == 0 or memory.shape[1] != features.get("channels")
                or min(size) < patchcore.MULTIPLE or fields["score_spread"] <= 0):
            raise ValueError(f"{path}: corrupt {FORMAT} model: arrays do not match the metadata")
        return cls(preprocessing=prep, bank=PatchMemory(memory, size), held_out_scores=held_out,
                   method="patchcore", **fields)


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
) -> DetectorModel:
    """Fit a detector on normal images; anomalous examples, if given, only set the threshold.

    `max_bank_images` trades accuracy on parts with much legitimate variation for
    scoring time, which grows linearly with it (about 0.2 ms per stored image at 128 px
    gray).

    The threshold is set on scores of normal images *held out* of the fit (k folds): a
    nearest-neighbour model scores its own training images at zero, so a threshold from
    training scores would flag most good parts.  With anomalous examples the threshold
    maximises F1 between held-out normals and anomalies; without, it sits where the
    held-out scores' exponential tail (`tail_scale`) predicts a false-alarm rate of
    _FALSE_ALARM_RATE.  Scores are maxima over an image, so their upper tail is long and
    a Gaussian "mean + 3 sigma" rule raises false alarms.  Deliberately not "highest
    training score plus a margin" either: one defective part slipped into the training
    set would then lift the threshold above real defects.

    `method`: "aligned" (default; numpy only, `working_size` default 128, `color`,
    `max_bank_images` apply) or "patchcore" (onnxruntime features + coreset memory bank;
    `working_size` is the network input's long side, default from the images' size, see
    patchcore.input_size; the input is always RGB; `coreset_ratio` of all normal patches
    are kept, at most `max_memory_patches`).
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if len(normal_images) < MIN_NORMAL_IMAGES:
        raise ValueError(f"need at least {MIN_NORMAL_IMAGES} normal images to fit, "
                         f"got {len(normal_images)}")
    if method == "patchcore":
        return _fit_patchcore(normal_images, anomalous_images, working_size,
                              coreset_ratio, max_memory_patches)
    prep = Preprocessing(working_size or 128, color)
    if max_bank_images < 1:
        raise ValueError(f"max_bank_images must be at least 1, got {max_bank_images}")
    normals = np.stack(_decode_all(normal_images, prep, "normal"))
    bank = NormalBank.fit(normals, max_bank_images)
    held_out = _held_out_scores(normals, max_bank_images)
    center = float(np.median(held_out))
    spread = tail_scale(held_out)
    anomalous = list(anomalous_images or [])
    if anomalous:
        decoded = _decode_all(anomalous, prep, "anomalous")
        anomaly_scores = np.array([bank.score(img) for img in decoded])
        threshold = best_f1_threshold(held_out, anomaly_scores)
    else:
        threshold = center + spread * math.log(0.5 / _FALSE_ALARM_RATE)
    return DetectorModel(
        preprocessing=prep,
        bank=bank,
        threshold=float(threshold),
        score_center=center,
        score_spread=spread,
        held_out_scores=held_out,
        training_fingerprint=fingerprint(normal_images),
        created_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        n_anomalous=len(anomalous),
    )


def _fit_patchcore(
    normal_images: Sequence[bytes],
    anomalous_images: Sequence[bytes] | None,
    working_size: int | None,
    coreset_ratio: float,
    max_memory_patches: int,
) -> DetectorModel:
    """fit() for method="patchcore": features once per image, a coreset bank per fold."""
    if not 0 < coreset_ratio <= 1:
        raise ValueError(f"coreset_ratio must be in (0, 1], got {coreset_ratio}")
    if max_memory_patches < 1:
        raise ValueError(f"max_memory_patches must be at least 1, got {max_memory_patches}")
    try:
        width, height = _image_size(normal_images[0])
    except ValueError as exc:
        raise ValueError(f"normal image 0: {exc}") from exc
    size = patchcore.input_size(width, height, working_size)
    extract = patchcore.extractor()

    def features_of(images: Sequence[bytes], kind: str) -> np.ndarray:
        out = []
        for index, data in enumerate(images):
            try:
                rgb, _ = patchcore.rgb_pixels(data, size)
            except ValueError as exc:
                raise ValueError(f"{kind} image {index}: {exc}") from exc
            out.append(extract(rgb))
        return np.stack(out)

    def bank_of(features: np.ndarray) -> PatchMemory:
        return PatchMemory.fit(features, size, coreset_ratio, max_memory_patches)

    normals = features_of(normal_images, "normal")
    memory = bank_of(normals)
    n = len(normals)
    folds = min(_HELD_OUT_FOLDS, n)
    held_out = np.empty(n)
    for fold in range(folds):
        held = np.arange(n) % folds == fold
        fold_bank = bank_of(normals[~held])
        held_out[held] = [fold_bank.distance_map(f).max() for f in normals[held]]
    center = float(np.median(held_out))
    spread = tail_scale(held_out)
    anomalous = list(anomalous_images or [])
    if anomalous:
        anomaly_scores = np.array([memory.distance_map(f).max()
                                   for f in features_of(anomalous, "anomalous")])
        threshold = best_f1_threshold(held_out, anomaly_scores)
    else:
        threshold = center + spread * math.log(0.5 / _FALSE_ALARM_RATE)
    return DetectorModel(
        preprocessing=Preprocessing(max(size), "rgb"),
        bank=memory,
        threshold=float(threshold),
        score_center=center,
        score_spread=spread,
        held_out_scores=held_out,
        training_fingerprint=fingerprint(normal_images),
        created_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        n_anomalous=len(anomalous),
        method="patchcore",
    )


def _image_size(data: bytes) -> tuple[int, int]:
    """(width, height) of encoded image bytes after EXIF rotation, from the header only."""
    from PIL import Image, UnidentifiedImageError

    if not data:
        raise ValueError("cannot decode image: no bytes")
    try:
        with Image.open(io.BytesIO(data)) as img:
            size = img.size
            if img.getexif().get(0x0112, 1) in (5, 6, 7, 8):
                size = size[::-1]
            return size
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ValueError(f"cannot decode image: {exc}") from exc


def fingerprint(images: Sequence[bytes]) -> str:
    """sha256 over the sorted per-image sha256s: identifies a training set regardless of order."""
    digests = sorted(hashlib.sha256(data).hexdigest() for data in images)
    return hashlib.sha256("\n".join(digests).encode()).hexdigest()


def tail_scale(held_out: np.ndarray) -> float:
    """Scale of the upper tail of normal scores: the mean excess over their median.

    For an exponential tail, P(score > median + t) = exp(-t / scale) / 2.  Floored at 5 %
    of the median so near-identical training images cannot make every verdict certain.
    """
    median = float(np.median(held_out))
    excess = held_out[held_out > median] - median
    return max(float(excess.mean()) if excess.size else 0.0, 0.05 * median, 1e-6)


def best_f1_threshold(normal_scores: np.ndarray, anomaly_scores: np.ndarray) -> float:
    """Threshold (score > threshold = anomalous) maximising F1; ties go to the widest gap.

    Candidates are midpoints between neighbouring scores, so the threshold sits in the
    middle of a gap rather than on top of an example.
    """
    scores = np.concatenate([normal_scores, anomaly_scores])
    is_anomaly = np.repeat([False, True], [normal_scores.size, anomaly_scores.size])
    order = np.argsort(scores, kind="stable")
    scores, is_anomaly = scores[order], is_anomaly[order]
    # Candidate i flags sorted positions i.. as anomalous.
    candidates = np.concatenate([[scores[0] - 1.0], (scores[:-1] + scores[1:]) / 2])
    gaps = np.concatenate([[0.0], np.diff(scores)])
    true_pos = np.cumsum(is_anomaly[::-1])[::-1]
    flagged = np.arange(scores.size, 0, -1)
    f1 = 2 * true_pos / (flagged + anomaly_scores.size)
    return float(candidates[np.lexsort((gaps, f1))[-1]])


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


def _pixel_spread(aligned: np.ndarray) -> np.ndarray:
    """Per-pixel spread of aligned normal images, used to weight differences.

    The variance is box-filtered because a few dozen images give a noisy per-pixel
    estimate, and floored (in quadrature) at a few times its median: without the floor
    a pixel that happened not to vary in training (a flat background) turns every
    speck of dust into a huge score.  The result mostly down-weights the places that
    do vary between good parts (edges, reflections, flexible parts).
    """
    variance = box_filter(aligned.var(axis=0, ddof=1), _smoothing(aligned.shape[-1]))
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


def _held_out_scores(images: np.ndarray, max_bank_images: int) -> np.ndarray:
    """Score every image with a bank fitted on the other folds."""
    n = len(images)
    folds = min(_HELD_OUT_FOLDS, n)
    scores = np.empty(n)
    for fold in range(folds):
        held = np.arange(n) % folds == fold
        bank = NormalBank.fit(images[~held], max_bank_images)
        scores[held] = [bank.score(img) for img in images[held]]
    return scores
