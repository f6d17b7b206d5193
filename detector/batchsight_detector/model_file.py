"""The model file: one .npz of arrays plus a JSON metadata string, written and read here.

Why a module of its own: the format outlives the code that wrote it.  A gateway may be sent
a file from an older or newer release, so reading checks everything (format, version,
method, the feature extractor's sha256, the arrays against the metadata) and raises a
ValueError that says what is wrong, rather than scoring with a model that does not match.
The metadata also documents the model for a person (threshold rule, calibration, training
set fingerprint).

Versions: 1 is written for method "aligned" (so older code can still read those files);
3 for "patchcore".  2 added "method" and "memory"; 3 keeps the memory in coreset selection
order and adds memory.augmentation and memory.border (a version 2 file is read as border 0,
no augmentation, unordered memory: it scores as it always did).
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, NotRequired, TypedDict

import numpy as np

from . import patchcore
from .aligned import NormalBank, max_shift, smoothing
from .calibration import threshold_rule
from .features import Preprocessing
from .patchcore import PatchMemory

if TYPE_CHECKING:
    from .model import DetectorModel

FORMAT = "batchsight-detector"
FORMAT_VERSION = 1
PATCHCORE_FORMAT_VERSION = 3
READABLE_VERSIONS = (1, 2, 3)
METHODS = ("aligned", "patchcore")
WHAT = "batchsight model file"
WHAT_IS = "a model file is the .npz that 'batchsight fit --output MODEL.npz' writes"

_ARRAYS = ("mean", "std", "bank", "held_out_scores")
_PATCHCORE_ARRAYS = ("memory", "held_out_scores")


class _SharedFields(TypedDict):
    """What files of both methods record alike: threshold, calibration, provenance."""

    threshold: float
    score_center: float
    score_spread: float
    training_fingerprint: str
    created_at: str
    n_anomalous: int


class ModelFields(_SharedFields):
    """DetectorModel's arguments, as read from a file (`DetectorModel(**read(path))`)."""

    preprocessing: Preprocessing
    bank: NormalBank | PatchMemory
    held_out_scores: np.ndarray
    method: str
    augmentation: NotRequired[tuple[str, ...]]
    augmentation_check: NotRequired[dict[str, float]]


def write(model: DetectorModel, path: str | Path) -> None:
    """Write `model` to `path` atomically: readers (a serving process) see the old file or the
    new one, never half of one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, allow_pickle=False, metadata=np.array(json.dumps(_metadata(model))),
                     **_arrays(model))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read(path: str | Path) -> ModelFields:
    """The model in a file written by `write()`; ValueError if it is not one this code can use."""
    with open(path, "rb") as fh:  # a missing file stays FileNotFoundError: not a format problem
        if not zipfile.is_zipfile(fh):  # else np.load tries pickle, and its advice is to unpickle
            raise ValueError(f"{path} is not a {WHAT} (not a complete .npz archive); {WHAT_IS}")
        fh.seek(0)
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
            raise ValueError(f"{path} is not a readable {WHAT} ({exc}); {WHAT_IS}") from exc
    return _from_parts(path, metadata, arrays)


def _arrays(model: DetectorModel) -> dict[str, np.ndarray]:
    if isinstance(model.bank, PatchMemory):
        return {"memory": model.bank.patches, "held_out_scores": model.held_out_scores}
    return {"mean": model.bank.mean, "std": model.bank.std, "bank": model.bank.images,
            "held_out_scores": model.held_out_scores}


def _metadata(model: DetectorModel) -> dict[str, Any]:
    if isinstance(model.bank, PatchMemory):
        head = _patchcore_head(model, model.bank)
    else:
        head = _aligned_head(model.preprocessing)
    return {
        **head,
        "threshold": model.threshold,
        "threshold_rule": threshold_rule(model.n_anomalous),
        "calibration": {
            "confidence": "logistic of |score - threshold| / score_spread",
            "score_center": model.score_center,
            "score_spread": model.score_spread,
            "n_normal": int(model.held_out_scores.size),
            "n_anomalous": model.n_anomalous,
        },
        "training_fingerprint": model.training_fingerprint,
        "created_at": model.created_at,
    }


def _aligned_head(prep: Preprocessing) -> dict[str, Any]:
    size = prep.working_size
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "preprocessing": {
            "working_size": size,
            "color": prep.color,
            "exif_transpose": True,
            "resample": "bilinear",
            "standardise": "per-image-channel",
            "align": "phase-correlation",
            "max_shift": max_shift(size),
            "patch": smoothing(size),
        },
    }


def _patchcore_head(model: DetectorModel, bank: PatchMemory) -> dict[str, Any]:
    ex = patchcore.extractor(model.extractor_path)
    return {
        "format": FORMAT,
        "format_version": PATCHCORE_FORMAT_VERSION,
        "method": "patchcore",
        "preprocessing": {
            "working_size": model.preprocessing.working_size,
            "input_width": bank.size[0],
            "input_height": bank.size[1],
            "color": "rgb",
            "exif_transpose": True,
            "resample": "bilinear",
        },
        "features": {
            "extractor": ex.path.name,
            "sha256": ex.sha256,
            "channels": bank.channels,
            **{k: ex.info[k] for k in ("backbone", "taps", "stride") if k in ex.info},
        },
        "memory": {"patches": len(bank.patches),
                   "selection": "greedy k-center coreset, in selection order",
                   "augmentation": list(model.augmentation),
                   "augmentation_check": model.augmentation_check,
                   "border": bank.border,
                   "score": "max over patches, outer `border` cells excluded, of the "
                            "distance to the nearest memory patch"},
    }


def _from_parts(path: str | Path, metadata: Any, arrays: dict[str, np.ndarray]) -> ModelFields:
    if not isinstance(metadata, dict) or metadata.get("format") != FORMAT:
        raise ValueError(f"{path} is not a {WHAT} (its metadata is not {FORMAT}'s); {WHAT_IS}")
    version = metadata.get("format_version")
    if version not in READABLE_VERSIONS:
        raise ValueError(f"{path}: unsupported {FORMAT} format version {version!r} "
                         f"(this code reads versions {READABLE_VERSIONS}); refit the model")
    method = metadata.get("method", "aligned")
    if method not in METHODS:
        raise ValueError(f"{path}: unknown detector method {method!r}; refit the model")
    if method == "patchcore":
        return _patchcore_fields(path, metadata, arrays, ordered=version >= 3)
    return _aligned_fields(path, metadata, arrays)


def _aligned_fields(path: str | Path, metadata: dict[str, Any],
                    arrays: dict[str, np.ndarray]) -> ModelFields:
    try:
        prep, shared = _shared_fields(metadata)
        mean, std, images = (arrays[key].astype(np.float32) for key in ("mean", "std", "bank"))
        held_out = arrays["held_out_scores"].astype(np.float64)
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{path}: corrupt {FORMAT} model: {exc}") from exc
    shape = (prep.channels, prep.working_size, prep.working_size)
    if (mean.shape != shape or std.shape != shape or images.shape[1:] != shape
            or len(images) == 0 or not np.all(std > 0) or shared["score_spread"] <= 0):
        raise ValueError(f"{path}: corrupt {FORMAT} model: arrays do not match the metadata")
    return {"preprocessing": prep, "bank": NormalBank(mean=mean, std=std, images=images),
            "held_out_scores": held_out, "method": "aligned", **shared}


def _patchcore_fields(path: str | Path, metadata: dict[str, Any], arrays: dict[str, np.ndarray],
                      *, ordered: bool) -> ModelFields:
    try:
        prep, shared = _shared_fields(metadata)
        prep_meta = metadata["preprocessing"]
        size = (int(prep_meta["input_width"]), int(prep_meta["input_height"]))
        memory = arrays["memory"].astype(np.float32)
        held_out = arrays["held_out_scores"].astype(np.float64)
        features = dict(metadata["features"])
        border, augmentation, check = _memory_layout(dict(metadata.get("memory", {})))
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{path}: corrupt {FORMAT} model: {exc}") from exc
    ex = patchcore.extractor()
    if features.get("sha256") != ex.sha256:
        raise ValueError(f"{path}: fitted with feature extractor {features.get('extractor')} "
                         f"sha256 {str(features.get('sha256'))[:12]}, this code ships "
                         f"{ex.sha256[:12]}; refit the model")
    if (memory.ndim != 2 or len(memory) == 0 or memory.shape[1] != features.get("channels")
            or min(size) < patchcore.MULTIPLE or shared["score_spread"] <= 0):
        raise ValueError(f"{path}: corrupt {FORMAT} model: arrays do not match the metadata")
    return {"preprocessing": prep, "bank": PatchMemory(memory, size, border=border, ordered=ordered),
            "held_out_scores": held_out, "method": "patchcore", "augmentation": augmentation,
            "augmentation_check": check, **shared}


def _shared_fields(metadata: dict[str, Any]) -> tuple[Preprocessing, _SharedFields]:
    prep_meta, calibration = metadata["preprocessing"], metadata["calibration"]
    prep = Preprocessing(int(prep_meta["working_size"]), prep_meta["color"])
    return prep, {
        "threshold": float(metadata["threshold"]),
        "score_center": float(calibration["score_center"]),
        "score_spread": float(calibration["score_spread"]),
        "training_fingerprint": str(metadata["training_fingerprint"]),
        "created_at": str(metadata["created_at"]),
        "n_anomalous": int(calibration["n_anomalous"]),
    }


def _memory_layout(memory_meta: dict[str, Any]) -> tuple[int, tuple[str, ...], dict[str, float]]:
    """(border, augmentation, augmentation_check) of a patchcore file's memory entry; a version
    2 file has none of them (border 0, no augmentation)."""
    check = dict(memory_meta.get("augmentation_check", {}))
    border = int(memory_meta.get("border", 0))
    augmentation = tuple(map(str, memory_meta.get("augmentation", ())))
    if border < 0 or not set(augmentation) <= set(patchcore.TRANSFORMS):
        raise ValueError(f"memory {memory_meta}")
    return border, augmentation, {str(k): float(v) for k, v in check.items()}
