"""A dataset read back for fitting and evaluating: its labelled images, its checksum, its splits.

``--dataset`` is one of:

- ``s3://bucket/datasets/NAME/manifest.jsonl``: a manifest `batchsight dataset build` wrote (or
  any Ground Truth / Lookout for Vision classification manifest);
- a manifest file on this machine (its images are still read from S3);
- a folder with ``normal/`` and ``anomaly/`` subfolders (no AWS needed).

Every image is checked against its id (the SHA-256 of its bytes) as it is read, so a model is
never fitted on a picture other than the one the manifest names. A manifest's checksum is the
SHA-256 of its bytes; a folder's is the SHA-256 of its sorted ``"{image_id} {class}"`` lines, so
it names the same labelled images wherever the folder is copied.
"""
from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from batchsight_tools.dataset import sources
from batchsight_tools.dataset.manifest import CLASS_NAMES, Label, ManifestError, loads, merge, sha256
from batchsight_tools.dataset.objects import is_missing, parallel, split_uri
from batchsight_tools.dataset.split import HOLDOUT_PERCENT, held_out
from batchsight_tools.models.arguments import Failure, UsageError

ADVICE = "build it with `batchsight dataset build`"


@dataclass(frozen=True)
class Image:
    image_id: str
    anomalous: bool
    data: bytes
    origin: str    # where it was read from


@dataclass(frozen=True)
class Dataset:
    location: str
    sha256: str
    images: tuple[Image, ...]

    def training(self) -> list[Image]:
        return [image for image in self.images if not held_out(image.image_id)]

    def evaluation(self) -> list[Image]:
        """The held-out split (split.HOLDOUT_PERCENT of the images, by id); UsageError unless it
        holds both classes, which AUROC needs."""
        images = [image for image in self.images if held_out(image.image_id)]
        kinds = Counter(image.anomalous for image in images)
        if not (kinds[False] and kinds[True]):
            raise UsageError(f"--dataset {self.location}: its held-out {HOLDOUT_PERCENT} % ({describe(images)}) "
                             "needs normal and anomaly images for AUROC; add images of the missing class")
        return images


def describe(images: list[Image]) -> str:
    kinds = Counter(image.anomalous for image in images)
    return f"{kinds[False]} {CLASS_NAMES[0]}, {kinds[True]} {CLASS_NAMES[1]}"


def load(location: str, s3: Callable[[], Any]) -> Dataset:
    """The dataset at ``location``; ``s3`` makes the client, called only for data in S3."""
    if location.startswith("s3://"):
        data = _get(s3(), location, missing=f"--dataset {location}: no such object; {ADVICE}")
        return _from_manifest(location, data, s3)
    path = Path(location)
    if path.is_dir():
        return _from_folder(location)
    if path.is_file():
        return _from_manifest(location, path.read_bytes(), s3)
    raise UsageError(f"--dataset {location}: no such file or folder; give s3://BUCKET/datasets/NAME/manifest.jsonl "
                     "(`batchsight dataset build` writes it) or a folder with normal/ and anomaly/")


def _from_folder(folder: str) -> Dataset:
    found = sources.labelled_folders(folder)
    images = tuple(Image(image.label.image_id, image.label.anomalous, image.path.read_bytes(), str(image.path))
                   for image in found)
    lines = sorted({f"{image.image_id} {CLASS_NAMES[image.anomalous]}\n" for image in images})
    return _checked(Dataset(str(Path(folder).resolve()), hashlib.sha256("".join(lines).encode()).hexdigest(),
                            _unique(images)))


def _from_manifest(location: str, data: bytes, s3: Callable[[], Any]) -> Dataset:
    try:
        labels = merge(loads(data, location)).labels
    except ManifestError as exc:
        raise UsageError(f"{exc}; {ADVICE}") from exc
    def read(label: Label) -> Image:
        image = _get(client, label.source_ref, missing=f"{label.where}: image {label.source_ref} is missing (no such "
                     f"object); {ADVICE} again")
        actual = sha256(image)
        if label.image_id and actual != label.image_id:
            raise Failure(f"{label.where}: {label.source_ref}: checksum mismatch: its SHA-256 is {actual[:12]}..., "
                          f"the manifest says {label.image_id[:12]}...; the object was changed after the dataset "
                          f"was built: {ADVICE} again")
        return Image(actual, label.anomalous, image, label.source_ref)

    client = s3() if labels else None
    return _checked(Dataset(location, sha256(data), _unique(tuple(parallel(read, labels)))))


def _unique(images: tuple[Image, ...]) -> tuple[Image, ...]:
    """One image per id (a folder may hold a copy twice), in id order."""
    return tuple(sorted({image.image_id: image for image in images}.values(), key=lambda image: image.image_id))


def _checked(dataset: Dataset) -> Dataset:
    if not dataset.images:
        raise UsageError(f"--dataset {dataset.location} holds no images; {ADVICE}")
    kinds = Counter(image.anomalous for image in dataset.images)
    if not (kinds[False] and kinds[True]):
        have = CLASS_NAMES[kinds[True] > 0]
        raise UsageError(f"--dataset {dataset.location} holds only {have} images ({len(dataset.images)}); "
                         "a fit is evaluated on normal and anomaly images: add the missing class")
    return dataset


def _get(s3: Any, uri: str, *, missing: str) -> bytes:
    from botocore.exceptions import ClientError

    bucket, key = split_uri(uri)
    try:
        body: bytes = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    except ClientError as exc:
        if is_missing(exc) or str(exc.response.get("Error", {}).get("Code")) == "NoSuchBucket":
            raise UsageError(missing) from exc
        raise
    return body
