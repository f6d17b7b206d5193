"""images.py inspect, check_pixels and check_image on real encoded images made with Pillow (and a
few crafted byte strings)."""
from __future__ import annotations

import hashlib
import io
import struct
import zlib
from typing import Any

import pytest
from PIL import Image

from batchsight.config import IngestSettings
from batchsight.images import CheckedImage, InvalidImage, check_image, check_pixels, inspect, sniff
from tests.support import SHARED

LIMITS = IngestSettings()


def encode(image: Image.Image, fmt: str, **options: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def photo(width: int = 320, height: int = 240, mode: str = "RGB") -> Image.Image:
    """A textured image (noise on a gradient), so JPEG data is not trivially small."""
    noise = Image.effect_noise((width, height), 40)
    gradient = Image.linear_gradient("L").resize((width, height))
    gray = Image.blend(noise, gradient, 0.5)
    if mode == "RGB":
        return Image.merge("RGB", (gray, noise, gradient))
    return gray.convert(mode)


def jpeg(width: int = 320, height: int = 240, mode: str = "RGB", **options: Any) -> bytes:
    return encode(photo(width, height, mode), "JPEG", quality=90, **options)


def png(width: int = 320, height: int = 240, mode: str = "RGB") -> bytes:
    return encode(photo(width, height, mode if mode in ("RGB", "L") else "RGB").convert(mode), "PNG")


def bilevel_png(width: int, height: int) -> bytes:
    """A real, complete 1-bit grayscale PNG of any size, all black, built row by row (memory-light)."""
    row = b"\x00" + bytes((width + 7) // 8)   # filter byte 0 + packed pixels
    compressor = zlib.compressobj(6)
    idat = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return (struct.pack(">I", len(payload)) + kind + payload
                + struct.pack(">I", zlib.crc32(kind + payload) & 0xFFFFFFFF))

    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def reason(data: bytes, limits: IngestSettings = LIMITS) -> str:
    with pytest.raises(InvalidImage) as caught:
        check_image(data, limits)
    return str(caught.value)


@pytest.fixture(scope="module")
def bomb_png() -> bytes:
    """30000 x 30000 px (900 Mpx) that compresses to about 100 KiB: far past Pillow's bomb limit."""
    return bilevel_png(30000, 30000)


# --- images that pass -----------------------------------------------------------------------------

def test_real_jpeg_passes_with_sha256_id() -> None:
    data = jpeg(320, 240)
    checked = check_image(data, LIMITS)
    assert isinstance(checked, CheckedImage)
    assert checked.image_id == hashlib.sha256(data).hexdigest()
    assert len(checked.image_id) == 64
    assert (checked.ext, checked.size, checked.width, checked.height) == ("jpg", len(data), 320, 240)


def test_real_png_passes_with_sha256_id() -> None:
    data = png(200, 100)
    checked = check_image(data, LIMITS)
    assert checked.image_id == hashlib.sha256(data).hexdigest()
    assert (checked.ext, checked.size, checked.width, checked.height) == ("png", len(data), 200, 100)


def test_same_bytes_same_id_other_bytes_other_id() -> None:
    data = png(100, 100)
    assert check_image(data, LIMITS).image_id == check_image(bytes(data), LIMITS).image_id
    assert check_image(png(100, 100), LIMITS).image_id != check_image(data, LIMITS).image_id


def test_ext_comes_from_the_content() -> None:
    assert sniff(png(80, 80)) == "png"
    assert sniff(jpeg(80, 80)) == "jpg"
    assert check_image(png(80, 80), LIMITS).ext == "png"


@pytest.mark.parametrize("name,data_factory,size", [
    ("grayscale jpeg", lambda: jpeg(300, 200, mode="L"), (300, 200)),
    ("cmyk jpeg", lambda: encode(photo(300, 200).convert("CMYK"), "JPEG", quality=90), (300, 200)),
    ("progressive jpeg", lambda: jpeg(300, 200, progressive=True), (300, 200)),
    ("16-bit grayscale png", lambda: encode(Image.new("I;16", (120, 90), 40000), "PNG"), (120, 90)),
    ("rgba png", lambda: png(100, 100, mode="RGBA"), (100, 100)),
    ("paletted png", lambda: png(100, 100, mode="P"), (100, 100)),
    ("bilevel png", lambda: bilevel_png(128, 64), (128, 64)),
    ("odd size jpeg", lambda: jpeg(97, 65), (97, 65)),
])
def test_other_modes_pass_when_they_decode(name: str, data_factory: Any, size: tuple[int, int]) -> None:
    data = data_factory()
    with Image.open(io.BytesIO(data)) as image:  # the fixture really is what its name says
        image.load()
    checked = check_image(data, LIMITS)
    assert (checked.width, checked.height) == size


def test_sides_exactly_at_the_limits_pass() -> None:
    limits = IngestSettings(min_side=64, max_side=400)
    assert check_image(png(64, 400), limits).height == 400
    assert check_image(jpeg(400, 64), limits).width == 400


def test_size_exactly_at_max_bytes_passes() -> None:
    data = png(100, 100)
    assert check_image(data, IngestSettings(max_bytes=len(data))).size == len(data)


# --- files that are refused -----------------------------------------------------------------------

def test_empty_bytes() -> None:
    assert reason(b"") == "empty file (0 bytes)"


def test_truncated_jpeg() -> None:
    data = jpeg(320, 240)
    message = reason(data[: len(data) // 2])
    assert message.startswith("image does not decode")
    assert "truncated" in message


def test_truncated_progressive_jpeg() -> None:
    data = jpeg(320, 240, progressive=True)
    assert reason(data[: len(data) // 2]).startswith("image does not decode")


def test_truncated_png() -> None:
    data = png(200, 200)
    assert reason(data[: len(data) // 2]).startswith("image does not decode")


def test_header_only_jpeg() -> None:
    assert reason(b"\xff\xd8\xff\xe0" + b"\x00" * 20).startswith("image does not decode")


def test_png_magic_with_garbage() -> None:
    assert reason(b"\x89PNG\r\n\x1a\n" + b"this is not a chunk stream").startswith("image does not decode")


def test_text_file() -> None:
    message = reason(b"camera 7: exposure 1/250, gain 2\n")
    assert "not a JPEG or PNG" in message


@pytest.mark.parametrize("fmt", ["GIF", "BMP", "WEBP", "TIFF"])
def test_other_image_formats_are_refused_by_content(fmt: str) -> None:
    assert "not a JPEG or PNG" in reason(encode(photo(100, 100), fmt))


def test_too_small() -> None:
    message = reason(png(32, 32))
    assert "32x32" in message and "64" in message and "4096" in message


def test_one_side_too_small() -> None:
    assert "500x40" in reason(jpeg(500, 40))


def test_too_large_side() -> None:
    message = reason(png(5000, 70, mode="L"))  # 350 kB decoded: cheap
    assert "5000x70" in message and "4096" in message


def test_over_max_bytes() -> None:
    data = jpeg(320, 240)
    limit = len(data) - 1
    message = reason(data, IngestSettings(max_bytes=limit))
    assert str(len(data)) in message and str(limit) in message


def test_over_max_bytes_is_refused_before_decoding() -> None:
    """Even garbage over the limit is refused for its size, not its content."""
    message = reason(b"x" * 2000, IngestSettings(max_bytes=1000))
    assert "over the 1000-byte limit" in message


def test_decompression_bomb(bomb_png: bytes) -> None:
    assert len(bomb_png) < LIMITS.max_bytes  # small on disk, 900 Mpx once decoded
    message = reason(bomb_png)
    assert message.startswith("decompression bomb refused")


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")  # Pillow's own, from open()
def test_decompression_bomb_in_warning_range() -> None:
    """100 Mpx is past Pillow's warning threshold but under its error threshold: still refused."""
    assert reason(bilevel_png(10000, 10000)).startswith("decompression bomb refused")


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_pixel_limit_is_pillows_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    data = png(100, 100)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100 * 100 - 1)
    assert reason(data) == "decompression bomb refused: 100x100 px is over the 9999-pixel limit"
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100 * 100)
    assert check_image(data, LIMITS).width == 100
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)  # Pillow's way to switch the check off
    assert check_image(data, LIMITS).width == 100


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_bomb_is_refused_from_its_header_without_decoding() -> None:
    """Cut right after the header: only a check made before load() can name the bomb."""
    assert reason(bilevel_png(10000, 10000)[:64]).startswith("decompression bomb refused")


@pytest.mark.parametrize("data_factory,size", [(lambda: png(5000, 70, mode="L"), "5000x70"),
                                               (lambda: jpeg(32, 32), "32x32")])
def test_dimensions_are_refused_from_the_header_without_decoding(data_factory: Any, size: str) -> None:
    """A truncated stream would fail to decode; a header-first check names the dimensions instead."""
    data = data_factory()
    assert reason(data[: len(data) // 2]).startswith(f"image is {size} px")


def test_jpeg_cut_inside_the_header_does_not_decode() -> None:
    data = jpeg(320, 240)
    assert reason(data[:100]).startswith("image does not decode")


def test_multi_picture_jpeg_passes() -> None:
    image = photo(200, 150)
    data = encode(image, "MPO", save_all=True, append_images=[image])
    assert data.startswith(b"\xff\xd8\xff")
    assert check_image(data, LIMITS).ext == "jpg"


# --- every reason is a clear sentence ---------------------------------------------------------------

def _all_reasons(bomb: bytes) -> list[str]:
    data = jpeg(320, 240)
    cases: list[tuple[bytes, IngestSettings]] = [
        (b"", LIMITS), (data[: len(data) // 2], LIMITS), (b"plain text\n", LIMITS), (png(32, 32), LIMITS),
        (png(5000, 70, mode="L"), LIMITS), (data, IngestSettings(max_bytes=100)), (bomb, LIMITS),
        (b"\x89PNG\r\n\x1a\nxx", LIMITS),
    ]
    return [reason(d, limits) for d, limits in cases]


def test_every_reason_is_a_clear_sentence(bomb_png: bytes) -> None:
    reasons = _all_reasons(bomb_png)
    assert len(set(reasons)) == len(reasons)  # each failure says something different
    for message in reasons:
        assert message and message == message.strip()
        assert "\n" not in message
        assert len(message.split()) >= 3, message
        assert message[0].isalpha(), message
        assert "b'" not in message and "Traceback" not in message, message
        assert len(message) < 300, message


# --- the two steps: inspect (ingest, no pixel decoded) and check_pixels (the verifier) -------------

def _inspect_reason(data: bytes) -> str:
    with pytest.raises(InvalidImage) as caught:
        inspect(data, LIMITS)
    return str(caught.value)


@pytest.mark.parametrize("cut", [lambda d: d[: len(d) // 2], lambda d: d[:100], lambda d: d[:-2],
                                 lambda d: b"\xff\xd8\xff\xe0" + b"\x00" * 20])
def test_inspect_refuses_every_incomplete_jpeg_without_decoding(cut: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Image, "open", None)  # proof that no decoder is involved
    assert _inspect_reason(cut(jpeg(320, 240))).startswith("image does not decode")


def test_inspect_refuses_a_png_with_a_bad_crc_or_cut_short(monkeypatch: pytest.MonkeyPatch) -> None:
    data = bytearray(png(200, 200))
    monkeypatch.setattr(Image, "open", None)
    assert "IEND" in _inspect_reason(bytes(data[:-12]))
    data[60] ^= 0xFF  # inside the first IDAT chunk
    assert "CRC" in _inspect_reason(bytes(data))


def test_inspect_reads_the_sizes_pillow_reads_from_real_camera_images() -> None:
    images = sorted((SHARED / "data").rglob("*.jp*g"))[::25]
    if not images:
        pytest.skip("needs the sample images in ../shared/data")
    for path in images:
        data = path.read_bytes()
        checked = inspect(data, LIMITS)
        with Image.open(path) as image:
            assert (checked.width, checked.height) == image.size, path
        assert checked.image_id == hashlib.sha256(data).hexdigest()


def test_zero_padding_after_the_end_marker_is_accepted() -> None:
    assert inspect(jpeg(128, 96) + bytes(300), LIMITS).width == 128


def test_corrupt_compressed_data_passes_inspect_and_fails_check_pixels() -> None:
    data = bytearray(jpeg(200, 150))
    scan = data.index(b"\xff\xda")
    data[scan + 4:scan + 8] = b"\x09\x09\x09\x09"  # the scan names components the frame lacks
    checked = inspect(bytes(data), LIMITS)
    with pytest.raises(InvalidImage, match="^image does not decode"):
        check_pixels(bytes(data), checked.ext, LIMITS)
