"""Where labelled images come from: labelled folders, labels in file names, operator feedback.

Why a module of its own: each source knows its own layout and nothing of S3 uploads or the
manifest file; `build` merges what they find. A local image's label is as old as the file
(its modification time: when someone sorted it into a folder or named it), an operator's as
old as the answer, so a later operator correction beats a folder label of the same picture.

- ``labelled_folders(DIR)``: ``DIR/normal/`` and ``DIR/anomaly/`` (the layout of
  ``../shared/data/<set>/train``);
- ``named_files(DIR, normal="cast_ok_*", anomaly="cast_def_*")``: labels from file names by
  glob patterns (``../shared/data/casting/stream/images``); a name matching neither is skipped;
- ``feedback(s3, FINAL_BUCKET, site, line)``: the ``*.label.manifest`` files the gateway writes
  beside each answered result (component/batchsight/feedback.py), pointing at the image in the
  final bucket, which the dataset references where it is.
"""
from __future__ import annotations

import fnmatch
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from batchsight_detector import arguments as detector_arguments
from batchsight_tools.dataset.manifest import Label, loads, sha256
from batchsight_tools.dataset.objects import exists, parallel
from batchsight_tools.models.arguments import UsageError

FEEDBACK_SUFFIX = ".label.manifest"


@dataclass(frozen=True)
class LocalImage:
    """An image file on this machine with its label (the label's ``source_ref`` is set on upload)."""

    path: Path
    label: Label


@dataclass(frozen=True)
class Feedback:
    labels: list[Label]     # the answers whose image is in the final bucket
    without_image: int      # answers whose image is not (skipped)


def labelled_folders(folder: str) -> list[LocalImage]:
    """DIR/normal/ and DIR/anomaly/ (either may be missing, not both)."""
    root = Path(folder)
    if not root.is_dir():
        raise UsageError(f"--folder {folder}: {'a file, not a folder' if root.exists() else 'no such folder'}; "
                         "give a folder with normal/ and anomaly/ subfolders of images")
    kinds = [kind for kind in ("normal", "anomaly") if (root / kind).is_dir()]
    if not kinds:
        raise UsageError(f"--folder {folder} has no normal/ and no anomaly/; put images of good parts in "
                         "normal/ and of defective ones in anomaly/")
    return [_local(path, anomalous=kind == "anomaly", source="folder")
            for kind in kinds for path in detector_arguments.images("--folder", str(root / kind))]


def named_files(folder: str, *, normal: str | None, anomaly: str | None) -> tuple[list[LocalImage], int]:
    """The images of DIR whose names match a pattern, and how many matched none."""
    if not (normal or anomaly):
        raise UsageError(f"--files {folder}: give --normal-pattern and/or --anomaly-pattern (e.g. 'cast_ok_*') "
                         "to say which file names are which")
    labelled, unlabelled = [], 0
    for path in detector_arguments.images("--files", folder):
        is_normal = bool(normal) and fnmatch.fnmatch(path.name, normal or "")
        is_anomaly = bool(anomaly) and fnmatch.fnmatch(path.name, anomaly or "")
        if is_normal and is_anomaly:
            raise UsageError(f"{path}: its name matches both --normal-pattern {normal!r} and --anomaly-pattern "
                             f"{anomaly!r}; make the patterns tell the two apart")
        if is_normal or is_anomaly:
            labelled.append(_local(path, anomalous=is_anomaly, source="file-name"))
        else:
            unlabelled += 1
    return labelled, unlabelled


def feedback(s3: Any, bucket: str, site: str, line: str | None) -> Feedback:
    """The operators' answers for a site (and line) in the final bucket, with their images."""
    prefix = f"results/{site}/" + (f"{line}/" if line else "")
    keys = [item["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
            for item in page.get("Contents", []) if item["Key"].endswith(FEEDBACK_SUFFIX)]

    def read(key: str) -> list[Label]:
        where = f"s3://{bucket}/{key}"
        found = loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read(), where, source="feedback")
        return [replace(label, source="feedback", origin=where) for label in found]

    labels = [label for found in parallel(read, keys) for label in found]
    present = parallel(lambda label: exists(s3, label.source_ref), labels)
    kept = [label for label, there in zip(labels, present, strict=True) if there]
    return Feedback(labels=kept, without_image=len(labels) - len(kept))


def _local(path: Path, *, anomalous: bool, source: str) -> LocalImage:
    data = path.read_bytes()
    made = datetime.fromtimestamp(path.stat().st_mtime, UTC)
    return LocalImage(path, Label(image_id=sha256(data), anomalous=anomalous, created_at=made, source=source,
                                  origin=str(path)))
