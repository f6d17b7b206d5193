"""Publishing a version: staged, copied into place with conditional writes, the index flipped last.

    1. stage    models/{name}/.staging/{token}/model.npz and package.json (the slow upload, where
                a network drop is most likely, touches no version)
    2. check    the staged objects are all there, at their sizes
    3. place    copy the model file to models/{name}/{N}/ and write package.json there, each only
                if the key is new (IfNoneMatch="*"): a version is never overwritten
    4. list     add N to index.json (IfMatch its ETag): from here on N exists for everyone
    always      remove the staging objects; on any failure (or Ctrl-C) before 4 completes, also
                remove what 3 wrote, so no reader ever finds part of a version

Readers reach a version only through the index, so until step 4 nothing is published; the
package.json, written after the model file, is also complete whenever it exists.

S3 conditional writes: moto 5.2.5 enforces ``IfNoneMatch="*"`` and ``IfMatch`` on PutObject
(checked in the tests) but ignores them on CopyObject, which AWS enforces; so the copy is also
preceded by a HEAD of its target, and package.json (a PutObject) is the write that settles a
race for version N everywhere.
"""
from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from batchsight_pipeline.model_store import package_key
from batchsight_tools.dataset.objects import exists
from batchsight_tools.models import index as index_rules
from batchsight_tools.models.arguments import Failure, error_code
from batchsight_tools.models.package import MODEL_KEY, Candidate, document
from batchsight_tools.models.registry import Conflict, Registry


@dataclass(frozen=True)
class Published:
    version: str
    package_key: str
    index: index_rules.Index


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def publish(registry: Registry, candidate: Candidate, *, clock: Callable[[], str] = now_iso) -> Published:
    """Publish ``candidate`` as the next version; all or nothing."""
    index, _ = registry.read_index()
    version = index_rules.next_version(index, registry.taken_versions())
    created_at = clock()
    package = json.dumps(document(candidate, name=registry.name, version=version, created_at=created_at),
                         indent=2).encode()
    staging = f"{registry.model_prefix}.staging/{uuid.uuid4().hex}/"
    final = registry.prefix(version)
    placed: list[str] = []
    try:
        _stage(registry, staging, candidate.model_file, package)
        _place(registry, staging + MODEL_KEY, final + MODEL_KEY, version)
        placed.append(final + MODEL_KEY)
        _put_new(registry, package_key(registry.name, version), package, version)
        placed.append(package_key(registry.name, version))
        listed = registry.update(lambda current: index_rules.add_version(
            current or index_rules.empty(registry.name, created_at), version, created_at=created_at,
            package=package_key(registry.name, version), auroc=candidate.metrics["auroc"],
            f1=candidate.metrics["f1"], now=clock()))
    except BaseException:
        _remove(registry, placed)
        raise
    finally:
        _remove(registry, [staging + MODEL_KEY, staging + "package.json"])
    return Published(version, package_key(registry.name, version), listed)


def _stage(registry: Registry, staging: str, model_file: bytes, package: bytes) -> None:
    registry.put(staging + MODEL_KEY, model_file, "application/octet-stream")
    registry.put(staging + "package.json", package, "application/json")
    for key, size in ((staging + MODEL_KEY, len(model_file)), (staging + "package.json", len(package))):
        head = registry.s3.head_object(Bucket=registry.bucket, Key=key)
        if head["ContentLength"] != size:
            raise Failure(f"{registry.uri(key)} holds {head['ContentLength']} bytes after the upload, not {size}; "
                          "nothing was published: run publish again")


def _place(registry: Registry, source: str, target: str, version: str) -> None:
    """Copy a staged file into the version, only if the target key is new."""
    from botocore.exceptions import ClientError

    if exists(registry.s3, registry.uri(target)):
        raise _taken(registry, version)
    try:
        registry.s3.copy_object(Bucket=registry.bucket, Key=target, IfNoneMatch="*",
                                CopySource={"Bucket": registry.bucket, "Key": source})
    except ClientError as exc:
        if error_code(exc) in ("PreconditionFailed", "ConditionalRequestConflict"):
            raise _taken(registry, version) from exc
        raise


def _put_new(registry: Registry, key: str, body: bytes, version: str) -> None:
    try:
        registry.put(key, body, "application/json", IfNoneMatch="*")
    except Conflict as exc:
        raise _taken(registry, version) from exc


def _taken(registry: Registry, version: str) -> Failure:
    return Failure(f"version {version} of {registry.name} was written by another publish meanwhile; nothing of "
                   "this one was published: run publish again (it takes the next number)")


def _remove(registry: Registry, keys: list[str]) -> None:
    """Best effort: a key left behind is never read (the index does not list it), and the next
    publish skips its version number."""
    for key in reversed(keys):
        with contextlib.suppress(Exception):
            registry.s3.delete_object(Bucket=registry.bucket, Key=key)
