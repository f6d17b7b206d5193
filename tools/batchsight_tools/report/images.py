"""The report's pictures: small JPEG thumbnails, with the model's anomaly mask blended in.

Thumbnails keep the file small enough to mail (a data URI per anomalous image); the mask is
drawn at the thumbnail's size, so what a reader sees is where the model saw the anomaly.
"""
from __future__ import annotations

import base64
import io

from PIL import Image, ImageChops, ImageOps

MASK_BLEND = 0.55
GREY_MASK_COLOUR = (230, 30, 30)


def thumbnail(image: bytes, mask: bytes | None, size: int) -> tuple[str, int, int]:
    """A JPEG data URI at most ``size`` px a side, with the anomaly mask blended in colour."""
    with Image.open(io.BytesIO(image)) as opened:
        picture = ImageOps.exif_transpose(opened).convert("RGB")
    full_size = picture.size
    picture.thumbnail((size, size), Image.Resampling.LANCZOS)
    if mask is not None:
        picture = overlay_mask(picture, mask, full_size)
    buffer = io.BytesIO()
    picture.save(buffer, format="JPEG", quality=80, optimize=True)
    return ("data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii"),
            picture.width, picture.height)


def overlay_mask(picture: Image.Image, mask_png: bytes, full_size: tuple[int, int]) -> Image.Image:
    """Blend the mask's anomaly pixels (not black, not transparent) into the picture.

    Lookout for Vision colours each anomaly class in its mask; a grey-scale mask is drawn red.
    """
    with Image.open(io.BytesIO(mask_png)) as opened:
        mask = opened.convert("RGBA")
    if mask.size != full_size:
        mask = mask.resize(full_size, Image.Resampling.NEAREST)
    mask = mask.resize(picture.size, Image.Resampling.NEAREST)
    red, green, blue, alpha = mask.split()
    lit = ImageChops.lighter(ImageChops.lighter(red, green), blue).point(lambda v: 255 if v > 0 else 0)
    hit = ImageChops.multiply(lit, alpha.point(lambda v: 255 if v > 0 else 0))
    grey = (ImageChops.difference(red, green).getbbox() is None
            and ImageChops.difference(green, blue).getbbox() is None)
    colour = Image.new("RGB", picture.size, GREY_MASK_COLOUR) if grey else mask.convert("RGB")
    return Image.composite(Image.blend(picture, colour, MASK_BLEND), picture, hit)
