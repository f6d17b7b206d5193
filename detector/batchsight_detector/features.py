"""Image decoding and the small image operations the detector is built from.

Everything here is numpy + Pillow so the `local` backend runs on a gateway or in a
Lambda without scipy or a deep-learning runtime.  Images become float32 arrays of shape
(channels, size, size), standardised per image and channel: the detector should react to
*local* differences from a normal part, not to the global brightness and contrast drift
of a camera over a shift.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TypeVar

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

ColorMode = Literal["gray", "rgb"]

_PIL_MODE: dict[str, str] = {"gray": "L", "rgb": "RGB"}
# What Pillow raises for bytes that are not a complete, decodable image (see pixels()).
DECODE_ERRORS = (
    UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError,
)
_EXIF_ORIENTATION = 0x0112
_QUARTER_TURNS = (5, 6, 7, 8)   # EXIF orientations that rotate the image by 90 degrees
_Decoded = TypeVar("_Decoded")


class UnreadableImage(ValueError):
    """One image of a set cannot be decoded: `kind` and `index` say which (decode_each), `path`
    the file when the caller knows it, so the person fitting a model knows what to remove."""

    def __init__(self, kind: str, index: int, reason: str, path: Path | None = None) -> None:
        super().__init__(f"{path if path is not None else f'{kind} image {index}'}: {reason}")
        self.kind, self.index, self.reason, self.path = kind, index, reason, path


def cannot_decode(exc: Exception) -> ValueError:
    """The ValueError for bytes Pillow refused; its own message for unknown data names an
    in-memory buffer ("<_io.BytesIO object at 0x...>"), which tells a person nothing."""
    if isinstance(exc, UnidentifiedImageError):
        return ValueError("cannot decode image: not a JPEG, PNG or other image format Pillow reads")
    return ValueError(f"cannot decode image: {exc}")


@dataclass(frozen=True)
class Preprocessing:
    """How bytes become model input; saved with the model so scoring matches fitting."""

    working_size: int = 128
    color: ColorMode = "gray"

    def __post_init__(self) -> None:
        if not 16 <= self.working_size <= 1024:
            raise ValueError(f"working_size must be between 16 and 1024, got {self.working_size}")
        if self.color not in _PIL_MODE:
            raise ValueError(f"color must be one of {sorted(_PIL_MODE)}, got {self.color!r}")

    @property
    def channels(self) -> int:
        return 1 if self.color == "gray" else 3


def decode(data: bytes, prep: Preprocessing) -> np.ndarray:
    """Model input: `pixels()` standardised per channel, shape (channels, size, size)."""
    return standardise(pixels(data, prep))


def pixels(data: bytes, prep: Preprocessing) -> np.ndarray:
    """Decode image bytes into raw (channels, size, size) float32 intensities in 0..255.

    JPEGs are decoded at a reduced DCT scale (`Image.draft`) because the model never
    needs more than `working_size` pixels: a 2000x1334 photograph then costs ~22 ms
    instead of ~55 (what is left is entropy decoding, which no scale skips).  The EXIF
    orientation is applied so a camera that tags its frames as rotated produces the same
    pixels as one that rotates them itself.

    Raises ValueError for anything that is not a complete, decodable image, so callers
    can treat it as a poison message rather than a crash.
    """
    if not data:
        raise ValueError("cannot decode image: no bytes")
    size = prep.working_size
    mode = _PIL_MODE[prep.color]
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.draft(mode, (size, size))
            upright = ImageOps.exif_transpose(img)
            resized = upright.convert(mode).resize((size, size), Image.Resampling.BILINEAR)
    except DECODE_ERRORS as exc:
        raise cannot_decode(exc) from exc
    arr = np.asarray(resized, dtype=np.float32).reshape(size, size, prep.channels)
    return np.ascontiguousarray(arr.transpose(2, 0, 1))


def decode_each(images: Sequence[bytes], kind: str,
                decoder: Callable[[bytes], _Decoded]) -> list[_Decoded]:
    """`decoder` applied to every image; a failure is an UnreadableImage that names the image
    ("normal image 3: ..."), so a caller that read a folder can name the file."""
    decoded = []
    for index, data in enumerate(images):
        try:
            decoded.append(decoder(data))
        except ValueError as exc:
            raise UnreadableImage(kind, index, str(exc)) from exc
    return decoded


def image_size(data: bytes) -> tuple[int, int]:
    """(width, height) of encoded image bytes after EXIF rotation, from the header only."""
    if not data:
        raise ValueError("cannot decode image: no bytes")
    try:
        with Image.open(io.BytesIO(data)) as img:
            return upright_size(img)
    except DECODE_ERRORS as exc:
        raise cannot_decode(exc) from exc


def upright_size(img: Image.Image) -> tuple[int, int]:
    """(width, height) of an opened image as displayed, i.e. once its EXIF orientation is
    applied; read it before `draft()` shrinks the image."""
    width, height = img.size
    if img.getexif().get(_EXIF_ORIENTATION, 1) in _QUARTER_TURNS:
        return height, width
    return width, height


def standardise(arr: np.ndarray) -> np.ndarray:
    """Zero mean, unit variance per channel; the floor keeps flat images from exploding noise."""
    mean = arr.mean(axis=(1, 2), keepdims=True)
    std = arr.std(axis=(1, 2), keepdims=True)
    return ((arr - mean) / np.maximum(std, 1.0)).astype(np.float32)


def box_filter(arr: np.ndarray, k: int) -> np.ndarray:
    """Mean over a k x k window on the last two axes (edge-replicated), as float32.

    Separable: k shifted views are added along each axis.  That is O(k), but k stays
    small (a few pixels at any working size) and each step is one contiguous vector add,
    which in numpy beats cumulative sums: cumsum along the contiguous axis runs a
    sequential loop and was 2-4x slower here.
    """
    if k <= 1:
        return arr
    before, after = k // 2, k - 1 - k // 2
    pad = [(0, 0)] * (arr.ndim - 2) + [(before, after), (before, after)]
    padded = np.pad(arr.astype(np.float32, copy=False), pad, mode="edge")
    h, w = arr.shape[-2:]
    rows = padded[..., 0:h, :].copy()
    for i in range(1, k):
        rows += padded[..., i:i + h, :]
    out = rows[..., 0:w].copy()
    for i in range(1, k):
        out += rows[..., i:i + w]
    out /= np.float32(k * k)
    return out


def estimate_shift(
    image: np.ndarray, reference_spectrum: np.ndarray, max_shift: int
) -> tuple[float, float]:
    """Sub-pixel (dy, dx) that moves `image` onto the reference, by phase correlation.

    Parts never sit at exactly the same spot under the camera; a per-pixel model of an
    unaligned part learns blurred edges and misses small defects.  Phase correlation finds
    the translation in two FFTs and is insensitive to brightness changes.  The fraction
    comes from the two neighbours of the correlation peak (Foroosh et al., 2002): half a
    pixel of residual misalignment on a sharp edge looks like a defect otherwise.
    `reference_spectrum` comes from `spectrum()` so it is computed once per model.
    """
    cross = reference_spectrum * np.conj(spectrum(image))
    cross /= np.maximum(np.abs(cross), 1e-9)
    corr = np.fft.irfft2(cross, s=image.shape[-2:])
    h, w = corr.shape
    dy = np.fft.fftfreq(h, 1.0 / h)
    dx = np.fft.fftfreq(w, 1.0 / w)
    allowed = (np.abs(dy)[:, None] <= max_shift) & (np.abs(dx)[None, :] <= max_shift)
    iy, ix = np.unravel_index(int(np.argmax(np.where(allowed, corr, -np.inf))), corr.shape)
    peak = corr[iy, ix]
    fy = _peak_fraction(peak, corr[(iy - 1) % h, ix], corr[(iy + 1) % h, ix])
    fx = _peak_fraction(peak, corr[iy, (ix - 1) % w], corr[iy, (ix + 1) % w])
    return float(dy[iy] + fy), float(dx[ix] + fx)


def _peak_fraction(peak: float, before: float, after: float) -> float:
    """Offset in (-1, 1) of the true peak from the sampled one, from its larger neighbour."""
    if after >= before and after > 0:
        return after / (after + peak)
    if before > 0:
        return -before / (before + peak)
    return 0.0


def spectrum(image: np.ndarray) -> np.ndarray:
    """Windowed 2-D spectrum of a (channels, h, w) image, channels averaged.

    The Hann window stops the image border (where the part is cut off differently
    after every shift) from dominating the correlation.
    """
    h, w = image.shape[-2:]
    window = np.outer(np.hanning(h), np.hanning(w)).astype(np.float32)
    return np.fft.rfft2(image.mean(axis=0) * window)


def shift(image: np.ndarray, dy: float, dx: float) -> np.ndarray:
    """Translate a (channels, h, w) image by (dy, dx) with bilinear interpolation.

    The gap opened at the border is filled by replicating the edge.
    """
    iy, ix = math.floor(dy), math.floor(dx)
    fy, fx = dy - iy, dx - ix
    out = np.zeros_like(image)
    for oy, wy in ((iy, 1.0 - fy), (iy + 1, fy)):
        for ox, wx in ((ix, 1.0 - fx), (ix + 1, fx)):
            if wy * wx > 1e-6:
                out += (wy * wx) * _shift_whole(image, oy, ox)
    return out


def _shift_whole(image: np.ndarray, dy: int, dx: int) -> np.ndarray:
    if dy == 0 and dx == 0:
        return image
    h, w = image.shape[-2:]
    py, px = abs(dy), abs(dx)
    padded = np.pad(image, [(0, 0), (py, py), (px, px)], mode="edge")
    return padded[:, py - dy:py - dy + h, px - dx:px - dx + w]
