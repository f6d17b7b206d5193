"""The model a local detector runs on: what ``inference.model`` (and ``inference.shadow_model``)
may name, made into a checked file on this gateway.

Four forms:
- a model package in S3, ``s3://BUCKET/models/{name}/{version}/`` (what ``batchsight model
  deploy`` writes into a Greengrass deployment): its ``package.json`` is read first, then the
  model file it lists is downloaded into the work folder (once per version);
- a model package folder on the gateway (a Greengrass artifact unpacked, or a copy): a folder
  holding ``package.json`` and the model file next to it;
- a plain model file (a path), or a plain S3 object (``s3://bucket/key.npz``), as before
  packages existed: no checksum to check, named by its file name, no version.

A package's model file is checked against the size and SHA-256 its ``package.json`` gives
before any detector is started on it: a damaged download or a file altered after publishing is
refused (``ModelRefused``) and never judges an image. A package that is not there (yet), or a
bucket that cannot be reached, is ``ModelUnavailable``: the gateway tries again later.

This is the gateway's own reader of the data contract
(contracts/schemas/model_package.schema.json, model_index.schema.json): edge and cloud share
the contract, never code.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from batchsight.cloud_errors import refusal

log = logging.getLogger(__name__)
PACKAGE_FILE = "package.json"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_VERSION = re.compile(r"^[1-9][0-9]{0,8}$")
_KEY = re.compile(r"^[A-Za-z0-9_.-]+$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_LAYOUT = re.compile(r"^(?P<root>(?:.*/)?models)/(?P<name>[^/]+)/(?P<version>[^/]+)/$")
REPUBLISH = ("publish the version again (batchsight model publish) and deploy it, or deploy another "
             "version (batchsight model deploy / rollback)")


class ModelRefused(RuntimeError):
    """A model that must not be used (damaged, not a package): the message says what to do. It is
    not tried again until the configuration names a model again."""


class ModelUnavailable(RuntimeError):
    """A model that is not there yet, or a bucket that cannot be reached: tried again later."""


@dataclass(frozen=True)
class ModelIdentity:
    """What results and the status topic name: the package's name and version (a plain model
    file: its file name, no version)."""

    name: str
    version: str = ""

    def __str__(self) -> str:
        return f"{self.name} version {self.version}" if self.version else self.name


@dataclass(frozen=True)
class PreparedModel:
    source: str                 # the setting's text
    path: Path                  # the file the detector loads
    identity: ModelIdentity
    sha256: str = ""            # checked against package.json; empty for a plain model file


def is_package(source: str) -> bool:
    """Whether ``source`` names a package (a folder, in S3 or here) rather than one model file."""
    if source.startswith("s3://"):
        key = urlsplit(source).path.lstrip("/")
        return key == "" or key.endswith("/") or key.rsplit("/", 1)[-1] == PACKAGE_FILE
    return source.endswith("/") or Path(source).name == PACKAGE_FILE or Path(source).is_dir()


def read_package(raw: bytes, where: str) -> dict[str, Any]:
    """The fields of a package.json the gateway uses, checked; ModelRefused says what is wrong."""
    try:
        document = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ModelRefused(f"model package {where} is not valid JSON ({exc}); {REPUBLISH}") from exc
    if not isinstance(document, dict) or document.get("v") != 1:
        raise ModelRefused(f"model package {where} is not a package.json of version 1 (\"v\": 1); {REPUBLISH}")
    entry = document.get("files", {}).get("model") if isinstance(document.get("files"), dict) else None
    problems = [name for name, ok in (
        ("name", _NAME.match(str(document.get("name", ""))) is not None),
        ("version", _VERSION.match(str(document.get("version", ""))) is not None),
        ("files.model", isinstance(entry, dict)),
    ) if not ok]
    if not problems and isinstance(entry, dict):
        problems = [f"files.model.{name}" for name, ok in (
            ("key", _KEY.match(str(entry.get("key", ""))) is not None),
            ("sha256", _SHA256.match(str(entry.get("sha256", ""))) is not None),
            ("bytes", isinstance(entry.get("bytes"), int) and entry["bytes"] > 0),
        ) if not ok]
    if problems:
        raise ModelRefused(f"model package {where} lacks a valid {problems[0]}; {REPUBLISH}")
    return document


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def prepare(source: str, *, s3: Any, models_folder: Path) -> PreparedModel:
    """The model ``source`` names as a checked local file; raises ModelRefused or ModelUnavailable."""
    if source.startswith("s3://"):
        if is_package(source):
            return _s3_package(source, s3, models_folder)
        return _s3_object(source, s3, models_folder)
    if is_package(source):
        return _folder_package(source)
    return PreparedModel(source, Path(source), ModelIdentity(Path(source).name))  # the server says if it is missing


def _checked(document: dict[str, Any], path: Path, where: str) -> str:
    """The file's SHA-256 when it is the one package.json lists; ModelRefused when it is not."""
    entry = document["files"]["model"]
    size = path.stat().st_size
    actual = sha256_of(path) if size == entry["bytes"] else ""
    if actual != entry["sha256"]:
        what = (f"is {size} bytes, not the {entry['bytes']} its package.json gives" if size != entry["bytes"]
                else f"has SHA-256 {actual[:12]}..., not the {entry['sha256'][:12]}... its package.json gives")
        raise ModelRefused(f"model {document['name']} version {document['version']} refused: its {entry['key']} "
                           f"{what} (damaged, or changed after publishing); {REPUBLISH}; the file: {where}")
    return actual


def _folder_package(source: str) -> PreparedModel:
    folder = Path(source).parent if Path(source).name == PACKAGE_FILE else Path(source)
    try:
        raw = (folder / PACKAGE_FILE).read_bytes()
    except OSError as exc:
        raise ModelUnavailable(f"model package folder {folder} has no readable {PACKAGE_FILE} "
                               f"({exc.strerror or exc}): deploy the package (package.json and its model file) "
                               "there, or fix inference.model") from exc
    document = read_package(raw, str(folder / PACKAGE_FILE))
    model = folder / document["files"]["model"]["key"]
    if not model.is_file():
        raise ModelUnavailable(f"model {document['name']} version {document['version']}: {model}, the file its "
                               f"package.json lists, is missing: deploy the whole package folder")
    digest = _checked(document, model, str(model))
    return PreparedModel(source, model, ModelIdentity(document["name"], document["version"]), digest)


def _s3_error(exc: Exception, uri: str) -> ModelUnavailable:
    return ModelUnavailable(f"cannot read {uri}: {refusal(exc) or exc}")


def _missing(exc: Exception) -> bool:
    from botocore.exceptions import ClientError

    return isinstance(exc, ClientError) and str(exc.response.get("Error", {}).get("Code")) in (
        "NoSuchKey", "404", "NotFound")


def _get(s3: Any, bucket: str, key: str) -> bytes | None:
    """The object's bytes; None when it does not exist; ModelUnavailable when S3 cannot be read."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        return bytes(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    except (ClientError, BotoCoreError) as exc:
        if _missing(exc):
            return None
        if isinstance(exc, ClientError) and exc.response.get("Error", {}).get("Code") in ("AccessDenied", "403"):
            raise ModelUnavailable(f"cannot read s3://{bucket}/{key} (AccessDenied): the version may not exist (S3 "
                                   "answers AccessDenied for a missing key to a role that may not list the bucket), "
                                   "or the device role lacks s3:GetObject on models/* (the policy of the stack "
                                   "output EdgeDevicePolicyArn)") from exc
        raise _s3_error(exc, f"s3://{bucket}/{key}") from exc


def _unknown_version(s3: Any, bucket: str, prefix: str) -> str:
    """Why a package.json is missing, said with what the model's index lists."""
    layout = _LAYOUT.match(prefix)
    if layout is None:
        return f"s3://{bucket}/{prefix}{PACKAGE_FILE} does not exist: name a package folder, s3://BUCKET/models/NAME/VERSION/"
    name, version = layout["name"], layout["version"]
    raw = _get(s3, bucket, f"{layout['root']}/{name}/index.json")
    if raw is None:
        return (f"model {name!r} has no index in s3://{bucket}/{layout['root']}/: publish it first "
                "(batchsight model publish), or fix inference.model")
    try:
        index = json.loads(raw)
        known = ", ".join(sorted(index.get("versions", {}), key=int)) or "none"
        current = index.get("current")
    except (ValueError, TypeError, AttributeError):
        known, current = "unreadable", None
    return (f"model {name!r} has no version {version} in s3://{bucket} (published: {known}; current: "
            f"{current or 'none'}): deploy a published version, or publish this one first")


def _s3_package(source: str, s3: Any, models_folder: Path) -> PreparedModel:
    url = urlsplit(source)
    bucket, key = url.netloc, url.path.lstrip("/")
    prefix = key[: -len(PACKAGE_FILE)] if key.endswith(PACKAGE_FILE) else key
    raw = _get(s3, bucket, f"{prefix}{PACKAGE_FILE}")
    if raw is None:
        raise ModelUnavailable(_unknown_version(s3, bucket, prefix))
    document = read_package(raw, f"s3://{bucket}/{prefix}{PACKAGE_FILE}")
    name, version = document["name"], document["version"]
    layout = _LAYOUT.match(prefix)
    if layout is not None and (layout["name"], layout["version"]) != (name, version):
        raise ModelRefused(f"s3://{bucket}/{prefix}{PACKAGE_FILE} says model {name} version {version}, but it lies "
                           f"under {layout['name']}/{layout['version']}/; {REPUBLISH}")
    entry = document["files"]["model"]
    target = models_folder / name / version / entry["key"]
    where = f"s3://{bucket}/{prefix}{entry['key']}"
    if target.is_file():
        try:
            return PreparedModel(source, target, ModelIdentity(name, version), _checked(document, target, where))
        except ModelRefused:
            target.unlink()  # a damaged copy here: fetch it again
    _download(s3, bucket, f"{prefix}{entry['key']}", target)
    try:
        digest = _checked(document, target, where)
    except ModelRefused:
        target.unlink()
        raise
    log.info("model package fetched", extra={"model": name, "version": version, "source": source,
                                             "file": str(target), "bytes": entry["bytes"]})
    return PreparedModel(source, target, ModelIdentity(name, version), digest)


def _s3_object(source: str, s3: Any, models_folder: Path) -> PreparedModel:
    """A plain model object, downloaded once: plain model keys are versioned by name."""
    url = urlsplit(source)
    target = models_folder / Path(url.path).name
    if not target.is_file():
        _download(s3, url.netloc, url.path.lstrip("/"), target)
        log.info("model fetched from S3", extra={"source": source, "file": str(target)})
    return PreparedModel(source, target, ModelIdentity(target.name))


def _download(s3: Any, bucket: str, key: str, target: Path) -> None:
    """Into a partial file renamed into place: a crash mid-download leaves no half model."""
    from botocore.exceptions import BotoCoreError, ClientError

    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.part")
    try:
        s3.download_file(bucket, key, str(partial))
    except (ClientError, BotoCoreError) as exc:
        partial.unlink(missing_ok=True)
        if _missing(exc):
            raise ModelUnavailable(f"s3://{bucket}/{key} does not exist: publish the model there, or fix the "
                                   "setting that names it") from exc
        raise _s3_error(exc, f"s3://{bucket}/{key}") from exc
    os.replace(partial, target)
