"""Image validation by content, in two steps, whatever the file's name says.

``inspect`` is what ingest checks before it journals a file: size, format, dimensions from
the header, and a complete stream (a JPEG ends with its end-of-image marker, every PNG chunk
has a valid CRC and IEND closes it), with the SHA-256. It reads every byte but decodes no
pixel: a 2000x1334 JPEG decodes in 12 ms and hashes in 0.8 ms, and the camera's file should
leave the drop folder at disk speed. ``check_pixels`` then decodes the image completely,
in the decoder's child process (verifier.py, decoder.py), before the image can join a batch.

The limits default to what every backend accepts (64 to 4096 px a side, 6 MiB bodies), so
an image that passes here is never rejected by the model for its shape.
"""
from __future__ import annotations

import hashlib
import io
import struct
import zlib
from dataclasses import dataclass

from PIL import Image

from batchsight.config import IngestSettings

_MAGIC = {b"\xff\xd8\xff": "jpg", b"\x89PNG\r\n\x1a\n": "png"}
# Pillow calls a JPEG with a multi-picture (MPF) segment "MPO": stereo and depth-map cameras
_PIL_FORMATS = {"jpg": ("JPEG", "MPO"), "png": ("PNG",)}
# JPEG start-of-frame markers (the ones carrying the dimensions): C0-CF except DHT, JPG, DAC
_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_SOS, _EOI = 0xDA, b"\xff\xd9"
_PNG_SIGNATURE = 8
_PNG_IEND = b"\x00\x00\x00\x00IEND\xaeB`\x82"  # the IEND chunk: no data, and its CRC
_TAIL = 4096   # cameras may pad a JPEG with zero bytes after its end-of-image marker


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


def inspect(data: bytes, limits: IngestSettings) -> CheckedImage:
    """Validate the bytes without decoding pixels (size, format, header, complete stream) and hash them.

    The header is checked before the stream, so a cut-off bomb or oversized image is named
    for what its header says.
    """
    check_size(len(data), limits)
    ext = sniff(data)
    if ext == "jpg":
        width, height = _jpeg_dimensions(data)
        _check_dimensions(width, height, limits)
        _jpeg_complete(data)
    else:
        width, height = _png_dimensions(data)
        _check_dimensions(width, height, limits)
        _png_complete(data)
    return CheckedImage(image_id=hashlib.sha256(data).hexdigest(), ext=ext, size=len(data),
                        width=width, height=height)


def check_pixels(data: bytes, ext: str, limits: IngestSettings) -> None:
    """Decode the whole image: what only a decoder finds (corrupt compressed data, a format Pillow
    reads otherwise than the header says)."""
    _decode(data, ext, limits)


def check_image(data: bytes, limits: IngestSettings) -> CheckedImage:
    """Both steps at once: for callers that need the full verdict now."""
    checked = inspect(data, limits)
    check_pixels(data, checked.ext, limits)
    return checked


def looks_whole(head: bytes, tail: bytes) -> bool:
    """True when a file whose first bytes are ``head`` and last bytes are ``tail`` holds a whole
    stream: a JPEG whose marker segments lead to its image data (SOS) within ``head`` and that
    ends with its end-of-image marker (zero padding allowed, as ``inspect`` allows), or a PNG
    that ends with its IEND chunk.

    The watcher asks this of a file just closed, to take it without a settle window. Walking the
    segments matters: a camera writing in several goes may stop after an EXIF segment whose
    thumbnail ends with an end-of-image marker of its own.
    """
    if head.startswith(b"\xff\xd8\xff"):
        return _reaches_scan(head) and tail[-_TAIL:].rstrip(b"\0").endswith(_EOI)
    return head.startswith(b"\x89PNG\r\n\x1a\n") and tail.endswith(_PNG_IEND)


def _reaches_scan(head: bytes) -> bool:
    """The JPEG's segments after SOI lead, within ``head``, to a start-of-scan header."""
    pos = 2
    while pos + 4 <= len(head) and head[pos] == 0xFF:
        while pos < len(head) - 3 and head[pos + 1] == 0xFF:
            pos += 1  # fill bytes before a marker
        marker, length = head[pos + 1], int.from_bytes(head[pos + 2:pos + 4], "big")
        if marker == _SOS:
            return pos + 2 + length <= len(head)
        if marker == _EOI[1] or length < 2:
            return False
        pos += 2 + length
    return False


def _incomplete(what: str) -> InvalidImage:
    return InvalidImage(f"image does not decode: {what}")


def _jpeg_dimensions(data: bytes) -> tuple[int, int]:
    """Walk the marker segments after SOI up to the first frame header and read its size."""
    pos = 2
    while True:
        if pos + 4 > len(data):
            raise _incomplete("the JPEG header is truncated (file cut short)")
        if data[pos] != 0xFF:
            raise _incomplete(f"the JPEG header is corrupt at byte {pos} (no marker where one must be)")
        while pos < len(data) - 3 and data[pos + 1] == 0xFF:
            pos += 1  # fill bytes before a marker
        marker, length = data[pos + 1], int.from_bytes(data[pos + 2:pos + 4], "big")
        if marker in (_SOS, _EOI[1]):
            raise _incomplete("the JPEG has no frame header before its image data")
        if length < 2:
            raise _incomplete(f"the JPEG segment at byte {pos} has an impossible length")
        if marker in _SOF:
            if pos + 9 > len(data):
                raise _incomplete("the JPEG frame header is truncated (file cut short)")
            height, width = struct.unpack_from(">HH", data, pos + 5)
            return width, height
        pos += 2 + length


def _jpeg_complete(data: bytes) -> None:
    if not data[-_TAIL:].rstrip(b"\0").endswith(_EOI):
        raise _incomplete("the JPEG is truncated: it does not end with its end-of-image marker "
                          "(file cut short or still being written)")


def _png_dimensions(data: bytes) -> tuple[int, int]:
    if data[_PNG_SIGNATURE + 4:_PNG_SIGNATURE + 8] != b"IHDR" or len(data) < _PNG_SIGNATURE + 25:
        raise _incomplete("the PNG does not start with its IHDR header chunk")
    width, height = struct.unpack_from(">II", data, _PNG_SIGNATURE + 8)
    return width, height


def _png_complete(data: bytes) -> None:
    """Every chunk whole with a matching CRC, up to IEND."""
    pos = _PNG_SIGNATURE
    while pos + 12 <= len(data):
        (length,) = struct.unpack_from(">I", data, pos)
        body_end = pos + 8 + length
        if body_end + 4 > len(data):
            break
        (crc,) = struct.unpack_from(">I", data, body_end)
        if zlib.crc32(data[pos + 4:body_end]) != crc:
            raise _incomplete(f"the PNG chunk at byte {pos} fails its CRC check (corrupt data)")
        if data[pos + 4:pos + 8] == b"IEND":
            return
        pos = body_end + 4
    raise _incomplete("the PNG is truncated: it ends before its IEND chunk "
                      "(file cut short or still being written)")


def _decode(data: bytes, ext: str, limits: IngestSettings) -> None:
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
    _check_dimensions(width, height, limits)


def _check_dimensions(width: int, height: int, limits: IngestSettings) -> None:
    """The same rules for the header ingest reads and the one Pillow reads."""
    if Image.MAX_IMAGE_PIXELS is not None and width * height > Image.MAX_IMAGE_PIXELS:
        raise InvalidImage(f"decompression bomb refused: {width}x{height} px is over the "
                           f"{Image.MAX_IMAGE_PIXELS}-pixel limit")
    if min(width, height) < limits.min_side or max(width, height) > limits.max_side:
        raise InvalidImage(f"image is {width}x{height} px; each side must be "
                           f"{limits.min_side} to {limits.max_side} px")
