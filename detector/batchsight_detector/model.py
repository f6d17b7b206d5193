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
from .verdict import verdict

FORMAT = "batchsight-detector"
FORMAT_VERSION = 1            # written for method "aligned": files older code can still read
# Written for method "patchcore".  2 added "method" and "memory"; 3 keeps the memory in
# coreset selection order and adds memory.augmentation and memory.border (a version 2 file
# is read as border 0, no augmentation, unordered memory: it scores as it always did).
PATCHCORE_FORMAT_VERSION = 3
READABLE_VERSIONS = (1, 2, 3)
METHODS = ("aligned", "patchcore")
MIN_NORMAL_IMAGES = 3
MAX_BANK_IMAGES = 64   # default cap: scoring time grows linearly with the stored images

# Spatial hyperparameters are fractions of the working size, so a model fitted at
# 256 px behaves like one fitted at 128 px.  Values chosen on the circuit-board set.
_SMOOTHING_FRACTION = 1 / 26   # patch side: about the size of the smallest defect worth reporting
_MAX_SHIFT_FRACTION = 1 / 8    # the part may move up to this far between images
_STD_FLOOR_FACTOR = 2.0        # spread floor, in medians of the spread (see _pixel_spread)
_HELD_OUT_FOLDS = 5
_FALSE_ALARM_RATE = 0.02       # unsupervised threshold target, per image (unsupervised_threshold)

_ARRAYS = ("mean", "std", "bank", "held_out_scores")
_PATCHCORE_ARRAYS = ("memory", "held_out_scores")
PATCHCORE_CORESET_RATIO = 0.1
PATCHCORE_MAX_MEMORY = 6144   # cap on memory patches (see PatchMemory.max_distance for the cost)
# A transform joins the memory bank when transformed normal images outscore held-out normal
# images in at most this share of pairs (0.5 = indistinguishable, 1 = always stranger).
_SYMMETRY_AUROC = 0.75


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
    `score_spread` (see `gumbel_fit`) describe the scores of normal images the model did
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
    augmentation: tuple[str, ...] = ()  # patchcore: transforms of the normals in the memory
    augmentation_check: dict[str, float] = field(default_factory=dict)  # transform -> AUROC

    def score(self, image_bytes: bytes) -> float:
        """Raw anomaly score (0 = identical to a stored normal image; higher = stranger)."""
        if isinstance(self.bank, PatchMemory):
            return self.bank.max_distance(self._features(image_bytes)[0])
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
        features, original = self._features(image_bytes)
        return self.bank.distance_map(features), original

    def _features(self, image_bytes: bytes) -> tuple[np.ndarray, tuple[int, int]]:
        assert isinstance(self.bank, PatchMemory)
        rgb, original = patchcore.rgb_pixels(image_bytes, self.bank.size)
        return patchcore.extractor(self.extractor_path)(rgb), original

    def detect(self, image_bytes: bytes) -> dict[str, Any]:
        """Verdict in the Lookout for Vision DetectAnomalyResult shape (see verdict.verdict)."""
        return verdict(self.score(image_bytes), self.threshold, self.score_spread)

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
                "memory": {"patches": len(self.bank.patches),
                           "selection": "greedy k-center coreset, in selection order",
                           "augmentation": list(self.augmentation),
                           "augmentation_check": self.augmentation_check,
                           "border": self.bank.border,
                           "score": "max over patches, outer `border` cells excluded, of the "
                                    "distance to the nearest memory patch"},
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
                else THRESHOLD_RULE
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
                memory_meta = dict(metadata.get("memory", {}))
                check = dict(memory_meta.get("augmentation_check", {}))
                layout = {"border": int(memory_meta.get("border", 0)),
                          "ordered": version >= 3,
                          "augmentation": tuple(map(str, memory_meta.get("augmentation", ()))),
                          "augmentation_check": {str(k): float(v) for k, v in check.items()}}
                if (layout["border"] < 0
                        or not set(layout["augmentation"]) <= set(patchcore.TRANSFORMS)):
                    raise ValueError(f"memory {memory_meta}")
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{path}: corrupt {FORMAT} model: {exc}") from exc
        if method == "patchcore":
            return cls._patchcore_from_parts(path, features, size, memory, held_out, prep, fields,
                                             layout)
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
                              prep: Preprocessing, fields: dict[str, Any],
                              layout: dict[str, Any]) -> DetectorModel:
        ex = patchcore.extractor()
        if features.get("sha256") != ex.sha256:
            raise ValueError(f"{path}: fitted with feature extractor {features.get('extractor')} "
                             f"sha256 {str(features.get('sha256'))[:12]}, this code ships "
                             f"{ex.sha256[:12]}; refit the model")
        if (memory.ndim != 2 or len(memory) == 0 or memory.shape[1] != features.get("channels")
                or min(size) < patchcore.MULTIPLE or fields["score_spread"] <= 0):
            raise ValueError(f"{path}: corrupt {FORMAT} model: arrays do not match the metadata")
        bank = PatchMemory(memory, size, border=layout["border"], ordered=layout["ordered"])
        return cls(preprocessing=prep, bank=bank, held_out_scores=held_out, method="patchcore",
                   augmentation=layout["augmentation"],
                   augmentation_check=layout["augmentation_check"], **fields)


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
    (`gumbel_fit`) exceeds with probability _FALSE_ALARM_RATE (`unsupervised_threshold`).
    Scores are maxima over an image, so their upper tail is long and a Gaussian "mean + 3
    sigma" rule raises false alarms.  Deliberately not "highest training score plus a
    margin" either: one defective part slipped into the training set would then lift the
    threshold above real defects.

    `method`: "aligned" (default; numpy only, `working_size` default 128, `color`,
    `max_bank_images` apply) or "patchcore" (onnxruntime features + coreset memory bank;
    `working_size` is the network input's long side, default from the images' size, see
    patchcore.input_size; the input is always RGB; `coreset_ratio` of all normal patches,
    transformed copies included, are kept, at most `max_memory_patches`).

    `augment` (patchcore): "auto" tries each of patchcore.TRANSFORMS (flips, rotations by
    180 and, for square inputs, 90 degrees) and adds the transformed normal images to the
    memory bank when the plain bank cannot tell them from held-out normal images (a
    transformed good part outscores a held-out good part in at most _SYMMETRY_AUROC of
    pairs): a round casting turned over is still a good casting, a circuit board is not.
    The check needs normal images only; its results are saved in the model file
    (memory.augmentation_check).  "none", or a list of transform names, skips the check.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if len(normal_images) < MIN_NORMAL_IMAGES:
        raise ValueError(f"need at least {MIN_NORMAL_IMAGES} normal images to fit, "
                         f"got {len(normal_images)}")
    if method == "patchcore":
        return _fit_patchcore(normal_images, anomalous_images, working_size,
                              coreset_ratio, max_memory_patches, augment)
    prep = Preprocessing(working_size or 128, color)
    if max_bank_images < 1:
        raise ValueError(f"max_bank_images must be at least 1, got {max_bank_images}")
    normals = np.stack(_decode_all(normal_images, prep, "normal"))
    bank = NormalBank.fit(normals, max_bank_images)
    held_out = _held_out_scores(normals, max_bank_images)
    anomalous = _decode_all(anomalous_images or [], prep, "anomalous")
    anomaly_scores = np.array([bank.score(img) for img in anomalous])
    return _calibrated(held_out, anomaly_scores, normal_images, preprocessing=prep, bank=bank)


def _calibrated(held_out: np.ndarray, anomaly_scores: np.ndarray, normal_images: Sequence[bytes],
                **fields: Any) -> DetectorModel:
    """What both methods end with: the threshold (best F1 against anomalous examples when there
    are any, else unsupervised) and the confidence scale, from the held-out normal scores."""
    threshold = (best_f1_threshold(held_out, anomaly_scores) if len(anomaly_scores)
                 else unsupervised_threshold(held_out))
    return DetectorModel(
        threshold=float(threshold),
        score_center=float(np.median(held_out)),
        score_spread=gumbel_fit(held_out)[1],
        held_out_scores=held_out,
        training_fingerprint=fingerprint(normal_images),
        created_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        n_anomalous=len(anomaly_scores),
        **fields,
    )


def _fit_patchcore(
    normal_images: Sequence[bytes],
    anomalous_images: Sequence[bytes] | None,
    working_size: int | None,
    coreset_ratio: float,
    max_memory_patches: int,
    augment: str | Sequence[str],
) -> DetectorModel:
    """fit() for method="patchcore": features once per image (and per transform), one bank.

    Held-out scores come from the one bank with the held-out image's own patches (and
    those of its transformed copies) removed: leave-one-image-out without refitting a
    coreset per fold.
    """
    if not 0 < coreset_ratio <= 1:
        raise ValueError(f"coreset_ratio must be in (0, 1], got {coreset_ratio}")
    if max_memory_patches < 1:
        raise ValueError(f"max_memory_patches must be at least 1, got {max_memory_patches}")
    try:
        width, height = _image_size(normal_images[0])
    except ValueError as exc:
        raise ValueError(f"normal image 0: {exc}") from exc
    size = patchcore.input_size(width, height, working_size)
    candidates = _augmentation_candidates(augment, size)
    extract = patchcore.extractor()

    def pixels_of(images: Sequence[bytes], kind: str) -> list[np.ndarray]:
        out = []
        for index, data in enumerate(images):
            try:
                out.append(patchcore.rgb_pixels(data, size)[0])
            except ValueError as exc:
                raise ValueError(f"{kind} image {index}: {exc}") from exc
        return out

    def bank_of(features: np.ndarray, groups: np.ndarray) -> PatchMemory:
        return PatchMemory.fit(features, size, coreset_ratio, max_memory_patches, groups=groups)

    def held_out_scores(bank: PatchMemory,
                        features: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        scores = {name: np.empty(len(maps)) for name, maps in features.items()}
        for image in range(n):
            unseen = bank.without(image)
            for name, maps in features.items():
                scores[name][image] = unseen.max_distance(maps[image])
        return scores

    rgb = pixels_of(normal_images, "normal")
    n = len(rgb)
    base = np.stack([extract(x) for x in rgb])
    transformed = {name: np.stack([extract(np.ascontiguousarray(patchcore.TRANSFORMS[name](x)))
                                   for x in rgb]) for name in candidates}
    del rgb
    bank = bank_of(base, np.arange(n))
    if augment == "auto" and candidates:
        # Would the plain bank take a transformed good part for a good part?
        scores = held_out_scores(bank, {"": base, **transformed})
        check = {name: round(_pair_auroc(scores[""], scores[name]), 3) for name in candidates}
        chosen = tuple(name for name in candidates if check[name] <= _SYMMETRY_AUROC)
        held_out = scores[""]
    else:
        check, chosen, held_out = {}, tuple(candidates), None
    if chosen:
        stacked = np.concatenate([base, *(transformed[name] for name in chosen)])
        bank = bank_of(stacked, np.tile(np.arange(n), len(chosen) + 1))
        held_out = None
    del transformed
    if held_out is None:
        held_out = held_out_scores(bank, {"": base})[""]
    anomaly_scores = np.array([bank.max_distance(extract(x))
                               for x in pixels_of(anomalous_images or [], "anomalous")])
    bank.sources = None
    return _calibrated(held_out, anomaly_scores, normal_images,
                       preprocessing=Preprocessing(max(size), "rgb"), bank=bank,
                       method="patchcore", augmentation=chosen, augmentation_check=check)


def _augmentation_candidates(augment: str | Sequence[str], size: tuple[int, int]) -> list[str]:
    """Transforms to try ("auto"), to use (a list) or none ("none"), for inputs of `size`."""
    square = size[0] == size[1]
    usable = [name for name in patchcore.TRANSFORMS if square or name not in ("rot90", "rot270")]
    if augment == "auto":
        return usable
    if augment == "none":
        return []
    names = list(dict.fromkeys([augment] if isinstance(augment, str) else augment))
    wrong = [name for name in names if name not in usable]
    if wrong:
        raise ValueError(f"augmentation {wrong} not usable for a {size[0]}x{size[1]} input "
                         f"(augment: 'auto', 'none' or names from {usable})")
    return names


def _pair_auroc(normal: np.ndarray, other: np.ndarray) -> float:
    """Share of pairs in which `other` outscores `normal` (ties half)."""
    greater = (other[:, None] > normal[None, :]).mean()
    ties = (other[:, None] == normal[None, :]).mean()
    return float(greater + 0.5 * ties)


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


THRESHOLD_RULE = (f"robust Gumbel fit (median, quartiles) to held-out normal scores, "
                  f"false-alarm rate {_FALSE_ALARM_RATE}")

# Quantiles of the standard Gumbel distribution: median and interquartile range.
_GUMBEL_MEDIAN = -math.log(math.log(2.0))
_GUMBEL_IQR = math.log(math.log(4.0)) - math.log(math.log(4.0 / 3.0))


def gumbel_fit(held_out: np.ndarray) -> tuple[float, float]:
    """(location, scale) of a Gumbel distribution through the scores' median and quartiles.

    A score is the maximum over many patch distances, and maxima follow a Gumbel law
    (extreme-value theory), whose upper tail is exponential with this scale.  Fitted on
    quantiles rather than moments so one odd image among a few dozen (a defect in the
    training set, an unusual good part) moves it little: on the casting set one held-out
    score of 55 against a median of 44 raised the moment estimate by a third.  The scale
    is floored at 2 % of the median so near-identical training images cannot make every
    verdict certain.
    """
    median = float(np.median(held_out))
    q1, q3 = np.percentile(held_out, [25, 75])
    scale = max(float(q3 - q1) / _GUMBEL_IQR, 0.02 * abs(median), 1e-6)
    return median - scale * _GUMBEL_MEDIAN, scale


def unsupervised_threshold(held_out: np.ndarray,
                           false_alarm_rate: float = _FALSE_ALARM_RATE) -> float:
    """Threshold from held-out normal scores alone: the Gumbel fit's 1 - rate quantile.

    Replaces "median + mean excess x ln(0.5 / 0.002)", which sat above most defects
    (recall 0.20 on the circuit boards, 0.03 on the castings): the mean excess of a few
    dozen scores is dominated by the largest one, and a 0.2 % rate asks the tail for
    more than a few dozen scores can tell.  The rate, 2 %, was chosen on the training
    split (held-out normals against train/anomaly), not on the test split.
    """
    location, scale = gumbel_fit(held_out)
    return location - scale * math.log(-math.log(1.0 - false_alarm_rate))


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
