"""A model's versions in the model bucket: the index, the packages, their files, read and checked.

The key layout is the cloud's (``batchsight_pipeline.model_store``: ``models/{name}/index.json``,
``models/{name}/{version}/package.json``), used here rather than written twice, so the tools
write exactly where the ``lambda`` backend reads.

Why the index is written conditionally (``IfMatch`` its ETag, ``IfNoneMatch="*"`` when new):
two people deploying or publishing at once must not silently undo each other; the loser
re-reads and applies its change again (``update``). Why every read is checked: a package is
used for weeks, and a damaged or altered one must be found by the person deploying it, with
the object named, not by the pipeline at its next start.
"""
from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from batchsight_detector import DetectorModel
from batchsight_pipeline.model_store import index_key, package_key
from batchsight_tools.dataset.manifest import sha256
from batchsight_tools.dataset.objects import is_missing
from batchsight_tools.models import index as index_rules
from batchsight_tools.models.arguments import Failure, UsageError, error_code

INDEX_ATTEMPTS = 3
REPUBLISH = "publish it again as a new version (versions are immutable)"
RESTORE = "restore an earlier version of it from the bucket's versioning"


class Conflict(Failure):
    """A conditional write lost to another writer."""


@dataclass(frozen=True)
class Registry:
    s3: Any
    bucket: str
    name: str

    @property
    def index_key(self) -> str:
        return index_key(self.name)

    @property
    def model_prefix(self) -> str:
        """``models/{name}/``: everything of this model."""
        return self.index_key.rsplit("/", 1)[0] + "/"

    def prefix(self, version: str) -> str:
        """``models/{name}/{version}/``: where the package and its files are."""
        return package_key(self.name, version).rsplit("/", 1)[0] + "/"

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"

    def read_index(self) -> tuple[index_rules.Index | None, str | None]:
        """The index and its ETag; (None, None) before the first publish."""
        from botocore.exceptions import ClientError

        try:
            response = self.s3.get_object(Bucket=self.bucket, Key=self.index_key)
        except ClientError as exc:
            if is_missing(exc):
                return None, None
            raise
        document = _json(response["Body"].read(), self.uri(self.index_key), RESTORE)
        if not isinstance(document.get("versions"), dict) or not isinstance(document.get("history"), list):
            raise Failure(f"{self.uri(self.index_key)} is not a model index (no versions or history); {RESTORE}")
        return document, response["ETag"]

    def index(self) -> index_rules.Index:
        """The index; a usage error when the model has none."""
        document, _ = self.read_index()
        if document is None:
            raise UsageError(f"model {self.name} has no versions in s3://{self.bucket} (no "
                                         f"{self.index_key}); publish one with `batchsight model publish`")
        return document

    def update(self, change: Callable[[index_rules.Index | None], index_rules.Index]) -> index_rules.Index:
        """Read, change and write the index conditionally; re-read and retry if another writer won."""
        for _ in range(INDEX_ATTEMPTS):
            document, etag = self.read_index()
            changed = change(document)
            try:
                self.write_index(changed, etag)
            except Conflict:
                continue
            return changed
        raise Failure(f"{self.uri(self.index_key)} kept changing under this command ({INDEX_ATTEMPTS} tries); "
                      "someone else is publishing or deploying: run it again")

    def write_index(self, document: index_rules.Index, etag: str | None) -> None:
        condition = {"IfMatch": etag} if etag else {"IfNoneMatch": "*"}
        self.put(self.index_key, json.dumps(document, indent=2).encode(), "application/json", **condition)

    def put(self, key: str, body: bytes, content_type: str, **condition: str) -> None:
        from botocore.exceptions import ClientError

        try:
            self.s3.put_object(Bucket=self.bucket, Key=key, Body=body, ContentType=content_type, **condition)
        except ClientError as exc:
            if error_code(exc) in ("PreconditionFailed", "ConditionalRequestConflict"):
                raise Conflict(f"{self.uri(key)} was written by someone else meanwhile") from exc
            raise

    def taken_versions(self) -> list[int]:
        """Every version number with objects under ``models/{name}/``, listed in the index or not.

        Listed key by key, not by ``Delimiter`` prefixes: moto 5.2.5 still reports the prefix of a
        key whose current version is a delete marker (what a failed publish leaves), AWS does not.
        """
        pages = self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self.model_prefix)
        folders = {item["Key"][len(self.model_prefix):].split("/")[0]
                   for page in pages for item in page.get("Contents", [])}
        return [int(folder) for folder in folders if folder.isdigit()]

    def package(self, version: str) -> dict[str, Any]:
        """A listed version's package.json, checked for what readers use; Failure when damaged."""
        key = package_key(self.name, version)
        body = self._get(key, f"the package of version {version} is missing; {REPUBLISH}")
        document = _json(body, self.uri(key), f"the package is damaged; {REPUBLISH}")
        model = document.get("files", {}).get("model") if isinstance(document.get("files"), dict) else None
        if not (isinstance(model, dict) and {"key", "sha256", "bytes"} <= model.keys()):
            raise Failure(f"{self.uri(key)} has no files.model {{key, sha256, bytes}}: the package is damaged; "
                          f"{REPUBLISH}")
        return document

    def model_bytes(self, version: str, package: dict[str, Any]) -> bytes:
        """The version's model file, checked against the SHA-256 its package lists."""
        entry = package["files"]["model"]
        key = self.prefix(version) + entry["key"]
        data = self._get(key, f"version {version}'s model file is missing; {REPUBLISH}")
        actual = sha256(data)
        if actual != entry["sha256"]:
            raise Failure(f"{self.uri(key)}: checksum mismatch: its SHA-256 is {actual[:12]}..., package.json says "
                          f"{str(entry['sha256'])[:12]}...; the file was changed or damaged: {REPUBLISH}")
        return data

    def checked(self, version: str) -> tuple[dict[str, Any], bytes]:
        """A version that readers can use: listed, its package readable, its model file intact."""
        index_rules.require(self.read_index()[0], version, self.name)
        package = self.package(version)
        return package, self.model_bytes(version, package)

    def load_model(self, version: str) -> DetectorModel:
        """The version's model, loaded (from a temporary file: the detector reads files)."""
        _, data = self.checked(version)
        with tempfile.TemporaryDirectory(prefix="batchsight-model-") as folder:
            path = Path(folder) / "model.npz"
            path.write_bytes(data)
            try:
                return DetectorModel.load(path)
            except ValueError as exc:
                raise Failure(f"version {version}'s model file is not a usable model ({exc}); {REPUBLISH}") from exc

    def _get(self, key: str, missing: str) -> bytes:
        from botocore.exceptions import ClientError

        try:
            body: bytes = self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        except ClientError as exc:
            if is_missing(exc):
                raise Failure(f"{self.uri(key)}: no such object: {missing}") from exc
            raise
        return body


def _json(body: bytes, where: str, advice: str) -> dict[str, Any]:
    try:
        document = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise Failure(f"{where} is not JSON ({exc}); {advice}") from exc
    if not isinstance(document, dict):
        raise Failure(f"{where} is not a JSON object; {advice}")
    return document
