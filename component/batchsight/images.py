"""Image validation by content: a file is an image only if it decodes, whatever its name says.

The limits default to what every backend accepts (64 to 4096 px a side, 6 MiB bodies), so
an image that passes here is never rejected by the model for its shape.
"""
from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass

from PIL import Image

from batchsight.config import IngestSettings

_MAGIC = {b"\xff\xd8\xff": "jpg", b"\x89PNG\r\n\x1a\n": "png"}
# Pillow calls a JPEG with a multi-picture (MPF) segment "MPO": stereo and depth-map cameras
_PIL_FORMATS = {"jpg": ("JPEG", "MPO"), "png": ("PNG",)}


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


def check_size(size: int, limits: IngestSettings) -> None:
    """Refuse on the byte count alone, so ingest can refuse a huge file from its stat unread."""
    if not size:
        raise InvalidImage("empty file (0 bytes)")
    if size > limits.max_bytes:
        raise InvalidImage(f"file is {size} bytes, over the {limits.max_bytes}-byte limit")


def check_image(data: bytes, limits: IngestSettings) -> CheckedImage:
    """Validate the bytes fully (size, header, dimensions, complete decode) and hash them."""
    check_size(len(data), limits)
    ext = sniff(data)
    width, height = _decode(data, ext, limits)
    return CheckedImage(image_id=hashlib.sha256(data).hexdigest(), ext=ext, size=len(data),
                        width=width, height=height)


def _decode(data: bytes, ext: str, limits: IngestSettings) -> tuple[int, int]:
    """Check the header first, then decode the whole stream (truncation shows only there).

    JPEGs decode at reduced scale for speed; nothing is decoded before its size is known to fit.
    """
    try:
        with Image.open(io.BytesIO(data)) as image:
            _check_header(image, ext, limits)
            size = image.size
            if ext == "jpg":
                image.draft(image.mode, (max(1, size[0] // 8), max(1, size[1] // 8)))
            image.load()
            return size
    except InvalidImage:
        raise
    except Image.DecompressionBombError as exc:
        raise InvalidImage(f"decompression bomb refused: {exc}") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise InvalidImage(f"image does not decode: {exc}") from exc


def _check_header(image: Image.Image, ext: str, limits: IngestSettings) -> None:
    """Refuse on what the header says, so an oversized or bomb image is never decoded.

    Pillow only warns between MAX_IMAGE_PIXELS and twice that; turning its warning into an
    error would change a process-wide filter from the ingest thread, so the limit is checked here.
    """
    if image.format not in _PIL_FORMATS[ext]:
        raise InvalidImage(f"content says {ext} but decodes as {image.format}")
    width, height = image.size
    if Image.MAX_IMAGE_PIXELS is not None and width * height > Image.MAX_IMAGE_PIXELS:
        raise InvalidImage(f"decompression bomb refused: {width}x{height} px is over the "
                           f"{Image.MAX_IMAGE_PIXELS}-pixel limit")
    if min(width, height) < limits.min_side or max(width, height) > limits.max_side:
        raise InvalidImage(f"image is {width}x{height} px; each side must be "
                           f"{limits.min_side} to {limits.max_side} px")
