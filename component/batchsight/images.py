"""Image validation by content: a file is an image only if it decodes, whatever its name says.

The limits default to what every backend accepts (64 to 4096 px a side, 6 MiB bodies), so
an image that passes here is never rejected by the model for its shape.
"""
from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import dataclass

from PIL import Image

from batchsight.config import IngestSettings

_MAGIC = {b"\xff\xd8\xff": "jpg", b"\x89PNG\r\n\x1a\n": "png"}
_PIL_FORMAT = {"jpg": "JPEG", "png": "PNG"}


class InvalidImage(ValueError):
    """The file is not an image we can send; the message is the quarantine reason."""


@dataclass(frozen=True)
class CheckedImage:
    image_id: str   # sha256 of the bytes: the same image under two names is one image
    ext: str
    size: int
    width: int
    height: int


def sniff(data: bytes) -> str:
    for magic, ext in _MAGIC.items():
        if data.startswith(magic):
            return ext
    raise InvalidImage("not a JPEG or PNG file (content checked, not the name)")


def check_image(data: bytes, limits: IngestSettings) -> CheckedImage:
    """Validate the bytes fully (header, dimensions, complete decode) and hash them."""
    if not data:
        raise InvalidImage("empty file (0 bytes)")
    if len(data) > limits.max_bytes:
        raise InvalidImage(f"file is {len(data)} bytes, over the {limits.max_bytes}-byte limit")
    ext = sniff(data)
    width, height = _decode(data, ext)
    if min(width, height) < limits.min_side or max(width, height) > limits.max_side:
        raise InvalidImage(f"image is {width}x{height} px; each side must be "
                           f"{limits.min_side} to {limits.max_side} px")
    return CheckedImage(image_id=hashlib.sha256(data).hexdigest(), ext=ext, size=len(data),
                        width=width, height=height)


def _decode(data: bytes, ext: str) -> tuple[int, int]:
    """Decode the whole stream (truncation shows only there), at reduced scale for speed."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                if image.format != _PIL_FORMAT[ext]:
                    raise InvalidImage(f"content says {ext} but decodes as {image.format}")
                size = image.size
                if ext == "jpg":
                    image.draft(image.mode, (max(1, size[0] // 8), max(1, size[1] // 8)))
                image.load()
                return size
    except InvalidImage:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise InvalidImage(f"decompression bomb refused: {exc}") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise InvalidImage(f"image does not decode: {exc}") from exc
