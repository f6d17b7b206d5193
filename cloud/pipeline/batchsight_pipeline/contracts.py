"""The data that crosses between edge and cloud, seen from the cloud side.

The JSON Schemas in component/batchsight/schemas/ define these documents; the contract tests
check both halves against them. Version 1 of every document carries ``"v": 1``.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime, UTC
from typing import Any

CONTRACT_VERSION = 1
_ID = re.compile(r"^[0-9a-f]{64}$")
_SEGMENT = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_EXTENSIONS = {"jpg", "png"}


class PoisonMessage(ValueError):
    """The message can never succeed (bad shape, missing object, undecodable image)."""


@dataclass(frozen=True)
class ImageMessage:
    """One SQS message: one image waiting in the bucket the gateways upload to."""

    bucket: str
    key: str
    image_id: str
    site: str
    line: str
    device: str
    captured_at: datetime
    batch_id: str
    file_name: str
    part_id: str = ""   # the part and lot the gateway's part context gave (empty when none)
    lot: str = ""

    @property
    def extension(self) -> str:
        return self.key.rsplit(".", 1)[-1]

    def result_prefix(self) -> str:
        """Deterministic location of this image's result, so a redelivery overwrites."""
        day = self.captured_at.astimezone(UTC)
        return (f"results/{self.site}/{self.line}/{self.device}/"
                f"{day:%Y}/{day:%m}/{day:%d}/{self.image_id}")

    def result_key(self) -> str:
        return self.result_prefix() + ".json"

    def mask_key(self) -> str:
        return self.result_prefix() + ".mask.png"

    def image_key(self) -> str:
        return f"{self.result_prefix()}.{self.extension}"

    def in_place(self, final_bucket: str) -> bool:
        """Uploaded straight to its place next to its result (ImageUpload=final-bucket): not moved."""
        return self.bucket == final_bucket and self.key == self.image_key()


def _field(body: dict[str, Any], name: str, pattern: re.Pattern[str] | None = None) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value:
        raise PoisonMessage(f"message field {name!r} is missing or not a string")
    if pattern is not None and not pattern.match(value):
        raise PoisonMessage(f"message field {name!r}={value!r} has a bad format")
    return value


def parse_message(raw: str, *, source_bucket: str, final_bucket: str) -> ImageMessage:
    """Parse and check an SQS body; anything malformed is poison, never retried.

    Every gateway may send to the shared queue, but IAM keeps each one to its own
    ``incoming/{site}/{line}/{device}/`` prefix (``results/{site}/{line}/{device}/`` when
    ``source_bucket`` is the final bucket). The message must point inside that same prefix of
    the bucket gateways upload to, and in the final bucket at the very key its image belongs
    at: otherwise one gateway could have another's image judged and moved, with its result,
    into its own ``results/`` prefix."""
    try:
        body = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise PoisonMessage(f"message body is not JSON: {exc}") from exc
    if not isinstance(body, dict) or body.get("v") != CONTRACT_VERSION:
        raise PoisonMessage(f"message version must be {CONTRACT_VERSION}")
    key = _field(body, "key")
    if key.rsplit(".", 1)[-1] not in _EXTENSIONS:
        raise PoisonMessage(f"message key {key!r} must end in .jpg or .png")
    try:
        captured = datetime.fromisoformat(_field(body, "captured_at").replace("Z", "+00:00"))
    except ValueError as exc:
        raise PoisonMessage(f"message field 'captured_at' is not ISO 8601: {exc}") from exc
    if captured.tzinfo is None:
        raise PoisonMessage("message field 'captured_at' must carry a time zone")
    message = ImageMessage(
        bucket=_field(body, "bucket"), key=key, image_id=_field(body, "image_id", _ID),
        site=_field(body, "site", _SEGMENT), line=_field(body, "line", _SEGMENT),
        device=_field(body, "device", _SEGMENT), captured_at=captured,
        batch_id=_field(body, "batch_id"), file_name=str(body.get("file_name", "")),
        part_id=str(body.get("part_id") or ""), lot=str(body.get("lot") or ""),
    )
    _check_owner(message, source_bucket, final_bucket)
    return message


def _check_owner(message: ImageMessage, source_bucket: str, final_bucket: str) -> None:
    if message.bucket != source_bucket:
        raise PoisonMessage(f"message bucket {message.bucket!r} is not the source bucket {source_bucket!r}")
    if source_bucket == final_bucket:
        if message.key != message.image_key():
            raise PoisonMessage(f"message key {message.key!r} is not its image's place {message.image_key()!r}")
        return
    own = f"incoming/{message.site}/{message.line}/{message.device}/"
    if not message.key.startswith(own) or "/../" in message.key:
        raise PoisonMessage(f"message key {message.key!r} is outside its device's prefix {own!r}")


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def result_document(msg: ImageMessage, *, result: dict[str, Any], model: dict[str, str],
                    execution: str) -> dict[str, Any]:
    """The envelope stored at ``msg.result_key()``; ``result`` keeps the DetectAnomalyResult shape."""
    return {
        "v": CONTRACT_VERSION,
        "image_id": msg.image_id,
        "site": msg.site,
        "line": msg.line,
        "device": msg.device,
        "batch_id": msg.batch_id,
        "file_name": msg.file_name,
        "part_id": msg.part_id,
        "lot": msg.lot,
        "captured_at": msg.captured_at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        "source": {"bucket": msg.bucket, "key": msg.key},
        "image": {"key": msg.image_key()},
        "model": model,
        "processed_at": utc_now(),
        "execution": execution,
        "result": result,
    }
