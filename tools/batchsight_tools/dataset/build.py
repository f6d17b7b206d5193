"""Assembling one dataset: the sources' labels merged, local images uploaded, one manifest in S3.

Layout in the model bucket (beside ``models/``):

    datasets/{name}/manifest.jsonl             the manifest (manifest.py), rewritten by each build
    datasets/{name}/images/{image_id}.{ext}    the local images, content-addressed

Why content-addressed keys: an image is uploaded once however many builds and folders name
it (a HEAD finds it), an upload never replaces another picture (``IfNoneMatch="*"``), and a
manifest stays valid as long as the bucket does; the manifest is written last, so a build
that fails midway leaves the previous manifest in place. Operator feedback images are referenced
where they are, in the final bucket (versioned, kept). The model bucket is versioned too, so
each earlier manifest stays readable by version; a model package records the SHA-256 of the
manifest it was fitted on.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, replace
from typing import Any

from batchsight_tools.dataset import sources
from batchsight_tools.dataset.manifest import CLASS_NAMES, Label, dumps, merge, sha256
from batchsight_tools.dataset.objects import exists, parallel
from batchsight_tools.models.arguments import UsageError, error_code

CONTENT_TYPES = {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png"}


def manifest_key(name: str) -> str:
    return f"datasets/{name}/manifest.jsonl"


def image_key(name: str, image_id: str, suffix: str) -> str:
    return f"datasets/{name}/images/{image_id}{suffix.lower()}"


@dataclass(frozen=True)
class Sources:
    """What `batchsight dataset build` was asked to assemble."""

    folders: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    normal_pattern: str | None = None
    anomaly_pattern: str | None = None
    feedback_bucket: str | None = None
    site: str | None = None
    line: str | None = None


@dataclass(frozen=True)
class Built:
    uri: str
    sha256: str
    labels: list[Label]
    duplicates: int
    relabelled: int
    unlabelled: int            # file names that matched no pattern
    without_image: int         # feedback whose image is not in the final bucket
    uploaded: int              # images new to the bucket

    def lines(self) -> list[str]:
        """What the command prints: counts per label and per source."""
        def counts(labels: list[Label]) -> str:
            kinds = Counter(label.class_name for label in labels)
            return ", ".join(f"{kinds[name]} {name}" for name in CLASS_NAMES)

        out = [f"{len(self.labels)} images ({counts(self.labels)}) in {self.uri}",
               f"  manifest sha256 {self.sha256}"]
        skipped = {"file-name": (self.unlabelled, "file names matched no pattern (skipped)"),
                   "feedback": (self.without_image, "answers without their image in the final bucket (skipped)")}
        for source in ("folder", "file-name", "feedback"):
            mine = [label for label in self.labels if label.source == source]
            count, what = skipped.get(source, (0, ""))
            out.append(f"  from {source}: {len(mine)} ({counts(mine)})" + (f"; {count} {what}" if count else ""))
        out.append(f"  {self.duplicates} duplicate images merged (the latest label kept; {self.relabelled} "
                   f"changed class); {self.uploaded} images uploaded")
        return out


def build(s3: Any, bucket: str, name: str, wanted: Sources) -> Built:
    """Gather, merge, upload, write the manifest; UsageError for an empty or one-class dataset."""
    local, unlabelled = [], 0
    for folder in wanted.folders:
        local += sources.labelled_folders(folder)
    for folder in wanted.files:
        found, skipped = sources.named_files(folder, normal=wanted.normal_pattern, anomaly=wanted.anomaly_pattern)
        local, unlabelled = local + found, unlabelled + skipped
    answers = (sources.feedback(s3, wanted.feedback_bucket, wanted.site or "", wanted.line)
               if wanted.feedback_bucket else sources.Feedback([], 0))
    merged = merge([image.label for image in local] + answers.labels)
    _check_classes(merged.labels)
    paths = {image.label.image_id: image.path for image in local}
    to_upload = [label for label in merged.labels if not label.source_ref]

    def upload(label: Label) -> tuple[Label, bool]:
        path = paths[label.image_id]
        key = image_key(name, label.image_id, path.suffix)
        return replace(label, source_ref=f"s3://{bucket}/{key}"), _put_new(s3, bucket, key, path.read_bytes(),
                                                                             path.suffix.lower())

    uploaded = {label.image_id: (label, new) for label, new in parallel(upload, to_upload)}
    labels = [uploaded[label.image_id][0] if label.image_id in uploaded else label for label in merged.labels]
    data = dumps(labels)
    key = manifest_key(name)
    s3.put_object(Bucket=bucket, Key=key, Body=data, ContentType="application/x-ndjson")
    return Built(uri=f"s3://{bucket}/{key}", sha256=sha256(data), labels=labels, duplicates=merged.duplicates,
                 relabelled=merged.relabelled, unlabelled=unlabelled, without_image=answers.without_image,
                 uploaded=sum(new for _, new in uploaded.values()))


def _check_classes(labels: list[Label]) -> None:
    kinds = Counter(label.class_name for label in labels)
    if not labels:
        raise UsageError("no labelled images found: give --folder DIR (with normal/ and anomaly/), --files DIR "
                         "with --normal-pattern/--anomaly-pattern, or --feedback FINAL_BUCKET --site SITE")
    missing = [name for name in CLASS_NAMES if not kinds[name]]
    if missing:
        have = CLASS_NAMES[1 - CLASS_NAMES.index(missing[0])]
        raise UsageError(f"the dataset holds only {have} images ({kinds[have]}); evaluation needs {missing[0]} "
                         f"images too: add a source of them")


def _put_new(s3: Any, bucket: str, key: str, data: bytes, suffix: str) -> bool:
    """Upload unless the key is there (the same bytes: the key is their hash); True if uploaded."""
    from botocore.exceptions import ClientError

    if exists(s3, f"s3://{bucket}/{key}"):
        return False
    try:
        s3.put_object(Bucket=bucket, Key=key, Body=data, IfNoneMatch="*",
                      ContentType=CONTENT_TYPES.get(suffix, "application/octet-stream"))
    except ClientError as exc:
        if error_code(exc) != "PreconditionFailed":   # another build uploaded it just now: same bytes
            raise
        return False
    return True
