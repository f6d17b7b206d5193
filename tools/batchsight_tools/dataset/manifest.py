"""The dataset manifest: one JSON line per image, in the Ground Truth / Lookout for Vision shape.

    {"source-ref": "s3://bucket/datasets/castings/images/<image id>.jpeg",
     "anomaly-label": 1,
     "anomaly-label-metadata": {"class-name": "anomaly", "confidence": 1, "human-annotated": "yes",
                                "creation-date": "2026-12-04T08:00:00.000000",
                                "type": "groundtruth/image-classification",
                                "job-name": "labeling-job/batchsight-dataset", "image-id": "<sha256>",
                                "source": "folder", "origin": "train/anomaly/cast_def_0_1139.jpeg"}}

Why this shape: it is what Lookout for Vision, SageMaker Ground Truth and the gateway's
operator feedback (component/batchsight/feedback.py) already write and read, so a dataset we
build opens in existing tools and a feedback label file is itself a one-line manifest. What
batchsight adds lives inside the metadata object (``image-id``, ``source``, ``origin``, the
operator's fields), where tools that do not know them ignore them.

An image's id is the SHA-256 of its bytes, as everywhere in batchsight: two copies of one
picture are one image, and the label made last wins (``merge``).
"""
from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

LABEL = "anomaly-label"
TYPE = "groundtruth/image-classification"
JOB_NAME = "labeling-job/batchsight-dataset"
CLASS_NAMES = ("normal", "anomaly")          # by the label's value, 0 and 1 (Lookout for Vision's)
DATE_FORMAT = "%Y-%m-%dT%H:%M:%S.%f"          # Ground Truth's creation-date, UTC without a zone
IMAGE_ID = re.compile(r"^[0-9a-f]{64}$")
SOURCES = ("folder", "file-name", "feedback", "manifest")
_OURS = ("image-id", "source", "origin")      # what batchsight adds to the metadata


class ManifestError(ValueError):
    """A manifest (or label file) line that cannot be read; the message names the line."""


@dataclass(frozen=True)
class Label:
    """One labelled image: where it is, what it is, who said so and when."""

    image_id: str
    anomalous: bool
    created_at: datetime            # when the label was made (UTC); the latest label of an image wins
    source: str                     # one of SOURCES
    origin: str                     # where the label came from: a local path, a label file's s3:// URI
    source_ref: str = ""            # the image in S3 (s3://bucket/key); "" until uploaded
    job_name: str = JOB_NAME
    extra: Mapping[str, Any] = field(default_factory=dict)   # e.g. the operator's name and label
    where: str = field(default="", compare=False)            # the manifest line it was read from, if any

    @property
    def class_name(self) -> str:
        return CLASS_NAMES[int(self.anomalous)]


def to_line(label: Label) -> dict[str, Any]:
    """The manifest line of a label (what `dumps` writes)."""
    return {
        "source-ref": label.source_ref,
        LABEL: int(label.anomalous),
        f"{LABEL}-metadata": {
            **label.extra,
            "class-name": label.class_name,
            "confidence": 1,
            "human-annotated": "yes",
            "creation-date": label.created_at.astimezone(UTC).strftime(DATE_FORMAT),
            "type": TYPE,
            "job-name": label.job_name,
            "image-id": label.image_id,
            "source": label.source,
            "origin": label.origin,
        },
    }


def dumps(labels: Iterable[Label]) -> bytes:
    """The manifest file: one line per label, in image id order, so equal datasets are equal bytes."""
    lines = [json.dumps(to_line(label), sort_keys=True) for label in sorted(labels, key=lambda x: x.image_id)]
    return "".join(line + "\n" for line in lines).encode()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def loads(data: bytes, where: str, *, source: str = "manifest") -> list[Label]:
    """Every line of a manifest; ManifestError names the first line that is not a labelled image."""
    try:
        text = data.decode()
    except UnicodeDecodeError as exc:
        raise ManifestError(f"{where}: not a text file (JSON lines) ({exc.reason} at byte {exc.start})") from exc
    labels = []
    for number, line in enumerate(text.splitlines(), 1):
        if line.strip():
            labels.append(from_line(line, f"{where} line {number}", source=source))
    return labels


def from_line(line: str, where: str, *, source: str = "manifest") -> Label:
    """One line: a ``source-ref`` and an image-classification label attribute with its metadata.

    The label attribute is found by its ``-metadata`` (any name a labelling job gave it, ours
    is ``anomaly-label``); the image id is the metadata's ``image-id``, else the key's stem when
    that is one (batchsight's keys are), else "" (computed from the bytes when loaded).
    """
    try:
        document = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ManifestError(f"{where}: not JSON ({exc.msg} at column {exc.colno})") from exc
    if not isinstance(document, dict):
        raise ManifestError(f"{where}: not a JSON object")
    ref = document.get("source-ref")
    if not isinstance(ref, str) or not ref.startswith("s3://") or "/" not in ref[5:]:
        raise ManifestError(f"{where}: \"source-ref\" must be the image's s3://bucket/key")
    attribute = _label_attribute(document, where)
    value, metadata = document[attribute], document[f"{attribute}-metadata"]
    if value not in (0, 1) or isinstance(value, float):
        raise ManifestError(f"{where}: \"{attribute}\" must be 0 (normal) or 1 (anomaly), got {value!r}")
    named = metadata.get("class-name")
    if named is not None and named != CLASS_NAMES[value]:
        raise ManifestError(f"{where}: \"{attribute}\" {value} says {CLASS_NAMES[value]} but its class-name "
                            f"says {named!r}")
    image_id = str(metadata.get("image-id") or _stem(ref))
    if image_id and not IMAGE_ID.match(image_id):
        raise ManifestError(f"{where}: image-id {image_id!r} is not a SHA-256 (64 hex digits)")
    extra = {k: v for k, v in metadata.items()
             if k not in (*_OURS, "class-name", "confidence", "human-annotated", "creation-date", "type",
                          "job-name")}
    return Label(image_id=image_id, anomalous=bool(value), created_at=_date(metadata.get("creation-date"), where),
                 source=str(metadata.get("source") or source), origin=str(metadata.get("origin") or ref),
                 source_ref=ref, job_name=str(metadata.get("job-name") or JOB_NAME), extra=extra, where=where)


@dataclass(frozen=True)
class Merged:
    labels: list[Label]     # one per image, in image id order
    duplicates: int         # labels dropped because a later one named the same image
    relabelled: int         # of those, how many had said the other class


def merge(labels: Iterable[Label]) -> Merged:
    """One label per image id: the latest ``created_at`` wins, and of equal times the later given."""
    latest: dict[str, Label] = {}
    duplicates = relabelled = 0
    for label in labels:
        known = latest.get(label.image_id)
        if known is None:
            latest[label.image_id] = label
            continue
        duplicates += 1
        relabelled += label.anomalous != known.anomalous
        latest[label.image_id] = label if label.created_at >= known.created_at else known
    return Merged(sorted(latest.values(), key=lambda x: x.image_id), duplicates, relabelled)


def _label_attribute(document: Mapping[str, Any], where: str) -> str:
    names = [key[:-len("-metadata")] for key, value in document.items()
             if key.endswith("-metadata") and isinstance(value, dict) and key[:-len("-metadata")] in document
             and value.get("type", TYPE) == TYPE]
    if LABEL in names:
        return LABEL
    if len(names) != 1:
        raise ManifestError(f"{where}: no image-classification label: expected \"{LABEL}\": 0 or 1 and "
                            f"\"{LABEL}-metadata\" (Ground Truth / Lookout for Vision manifest)")
    return names[0]


def _stem(ref: str) -> str:
    stem = ref.rsplit("/", 1)[-1].split(".", 1)[0]
    return stem if IMAGE_ID.match(stem) else ""


def _date(text: object, where: str) -> datetime:
    """Ground Truth writes UTC without a zone; a missing date is older than any other."""
    if text is None:
        return datetime.min.replace(tzinfo=UTC)
    try:
        parsed = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError as exc:
        raise ManifestError(f"{where}: creation-date {text!r} is not an ISO 8601 time") from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
