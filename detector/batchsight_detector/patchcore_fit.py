"""Fitting for method="patchcore": the memory bank, its augmentation, its held-out scores.

Why a module of its own: patchcore.py is what scoring needs at run time (the extractor, the
memory bank, the image decoding); this is what only fitting needs.  Features are computed
once per image (and per transform), one coreset bank is fitted, and held-out scores come
from that one bank with the held-out image's own patches (and those of its transformed
copies) removed: leave-one-image-out without refitting a coreset per image.

Augmentation: a round casting turned over is still a good casting, a circuit board is not.
With augment="auto" each transform of patchcore.TRANSFORMS is tried, and the transformed
normal images join the bank when the plain bank cannot tell them from held-out normal
images; the check needs normal images only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from . import patchcore
from .evaluation import pair_auroc
from .features import UnreadableImage, decode_each, image_size
from .patchcore import PatchMemory

PATCHCORE_CORESET_RATIO = 0.1
PATCHCORE_MAX_MEMORY = 6144   # cap on memory patches (see PatchMemory.max_distance for the cost)
# A transform joins the memory bank when transformed normal images outscore held-out normal
# images in at most this share of pairs (0.5 = indistinguishable, 1 = always stranger).
_SYMMETRY_AUROC = 0.75


@dataclass(frozen=True)
class MemoryFit:
    """A fitted memory bank and the scores calibration needs (see fitting._calibration)."""

    bank: PatchMemory
    held_out: np.ndarray          # per normal image: its score by the bank without its patches
    anomaly_scores: np.ndarray    # per anomalous example: its score by the bank
    augmentation: tuple[str, ...]                # transforms whose copies are in the bank
    augmentation_check: dict[str, float]         # transform -> AUROC against held-out normals


def fit_memory(
    normal_images: Sequence[bytes],
    anomalous_images: Sequence[bytes],
    working_size: int | None,
    coreset_ratio: float,
    max_memory_patches: int,
    augment: str | Sequence[str],
) -> MemoryFit:
    """The memory bank of fit(..., method="patchcore"); its arguments are fit()'s."""
    if not 0 < coreset_ratio <= 1:
        raise ValueError(f"coreset_ratio must be in (0, 1], got {coreset_ratio}")
    if max_memory_patches < 1:
        raise ValueError(f"max_memory_patches must be at least 1, got {max_memory_patches}")
    try:
        width, height = image_size(normal_images[0])
    except ValueError as exc:
        raise UnreadableImage("normal", 0, str(exc)) from exc
    size = patchcore.input_size(width, height, working_size)
    candidates = augmentation_candidates(augment, size)
    base, transformed = _normal_features(normal_images, size, candidates)

    def fit_bank(maps: list[np.ndarray]) -> PatchMemory:
        return _fit_bank(maps, size, coreset_ratio, max_memory_patches)

    check: dict[str, float] = {}
    if augment == "auto" and candidates:
        plain = fit_bank([base])
        check, plain_held_out = _augmentation_check(plain, base, transformed)
        chosen = tuple(name for name in candidates if check[name] <= _SYMMETRY_AUROC)
        if not chosen:   # the plain bank is the model, and its held-out scores are known
            return _finish(plain, plain_held_out, anomalous_images, (), check)
    else:
        chosen = tuple(candidates)
    bank = fit_bank([base, *(transformed[name] for name in chosen)])
    del transformed   # held-out scoring needs only `base`: free the copies' memory first
    return _finish(bank, _held_out_scores(bank, base)[0], anomalous_images, chosen, check)


def augmentation_candidates(augment: str | Sequence[str], size: tuple[int, int]) -> list[str]:
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


def _rgb_of(images: Sequence[bytes], kind: str, size: tuple[int, int]) -> list[np.ndarray]:
    """Network input pixels of each image; a ValueError names the image that failed."""
    return decode_each(images, kind, lambda data: patchcore.rgb_pixels(data, size)[0])


def _normal_features(images: Sequence[bytes], size: tuple[int, int],
                     transforms: list[str]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Feature maps (n, C, h, w) of the normal images, and of their copies under each transform."""
    extract = patchcore.extractor()
    rgb = _rgb_of(images, "normal", size)
    base = np.stack([extract(x) for x in rgb])
    transformed = {name: np.stack([extract(np.ascontiguousarray(patchcore.TRANSFORMS[name](x)))
                                   for x in rgb]) for name in transforms}
    return base, transformed


def _fit_bank(maps: list[np.ndarray], size: tuple[int, int], ratio: float,
              max_patches: int) -> PatchMemory:
    """Coreset bank over the normal images' feature maps (maps[0]) and their transformed
    copies' (maps[1:]); each patch remembers the image it came from, for held-out scores."""
    features = np.concatenate(maps) if len(maps) > 1 else maps[0]
    sources = np.tile(np.arange(len(maps[0])), len(maps))
    return PatchMemory.fit(features, size, ratio, max_patches, groups=sources)


def _held_out_scores(bank: PatchMemory, *maps: np.ndarray) -> list[np.ndarray]:
    """For each of `maps` (feature maps of the normal images, or of their transformed copies),
    each image's score by the bank without the patches of that image and its copies."""
    images = len(maps[0])
    scores = [np.empty(images) for _ in maps]
    for image in range(images):
        unseen = bank.without(image)
        for out, features in zip(scores, maps, strict=True):
            out[image] = unseen.max_distance(features[image])
    return scores


def _augmentation_check(plain: PatchMemory, base: np.ndarray,
                        transformed: dict[str, np.ndarray]) -> tuple[dict[str, float], np.ndarray]:
    """Would the plain bank take a transformed good part for a good part?

    Per transform, the AUROC of its copies against the held-out normal images (rounded, as
    the model file records it); and the held-out normal scores, which the check computes.
    """
    held_out, *copies = _held_out_scores(plain, base, *transformed.values())
    check = {name: round(pair_auroc(held_out, scores), 3)
             for name, scores in zip(transformed, copies, strict=True)}
    return check, held_out


def _finish(bank: PatchMemory, held_out: np.ndarray, anomalous_images: Sequence[bytes],
            augmentation: tuple[str, ...], check: dict[str, float]) -> MemoryFit:
    """Score the anomalous examples and drop what only fitting needed."""
    extract = patchcore.extractor()
    anomaly_scores = np.array([bank.max_distance(extract(x))
                               for x in _rgb_of(anomalous_images, "anomalous", bank.size)])
    bank.sources = None
    return MemoryFit(bank, held_out, anomaly_scores, augmentation, check)
