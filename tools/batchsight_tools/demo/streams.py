"""The model loop's two camera streams, each with one good part photographed through a speck of lens dust.

Why the dust: the loop shows an operator answering one alert "confirmed" and one "false alarm",
and an honest false alarm needs a good part the model flags. On the generated parts the
detector finds every defect and flags no good part, so each stream carries one good part seen
through a soft, out-of-focus speck on the lens (always at the same place in the picture, as
dust on a fixed camera is). Version 1 has never seen dust and flags it; once an operator has
called it a false alarm, the rebuilt dataset holds it as a normal image, and the summary shows
how version 2 judges the second stream's dusty part. A version is fitted only on the images
outside the held-out split (four in five, by image id), so the demo photographs through the
dust the first good part whose picture falls in the training split: the answer then teaches
version 2 rather than only measuring it. One answer is one picture: whether version 2 stops
flagging the dust depends on the detector (the aligned method at 256 px mostly does, at
128 px often not), and the summary says what happened.

The second stream is new images: generated with another seed, or the ``--images`` test images
the first stream did not use (``--count`` must leave some).
"""
from __future__ import annotations

import hashlib
import io
import random
from dataclasses import replace
from pathlib import Path

import numpy as np
from PIL import Image

from batchsight_tools.dataset.split import held_out
from batchsight_tools.demo.frames import Frame, ImageFolder, UsageProblem, camera_frames

DUST_AT = (0.62, 0.30)      # centre, as fractions of the height and width
DUST_RADIUS = 0.05          # of the short side
DUST_DARKENING = 20.0       # grey levels at its centre
SECOND_SEED_OFFSET = 1000   # the second stream's generated parts: another seed's
DUST = "lens dust"


def second_count(count: int) -> int:
    """How many images the second stream drops: half the first's, at least 6."""
    return max(6, count // 2)


def with_lens_dust(data: bytes) -> bytes:
    """The picture as the camera takes it through a speck of dust: a soft dark disc, as JPEG."""
    with Image.open(io.BytesIO(data)) as opened:
        picture = np.asarray(opened.convert("RGB")).astype(np.float32)
    height, width = picture.shape[:2]
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    radius = DUST_RADIUS * min(height, width)
    distance = np.hypot(yy - DUST_AT[0] * height, xx - DUST_AT[1] * width)
    cover = np.clip((radius - distance) / (0.5 * radius) + 0.5, 0.0, 1.0)   # out of focus: a wide soft edge
    dusty = np.clip(picture - DUST_DARKENING * cover[..., None], 0, 255).round().astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(dusty).save(buffer, format="JPEG", quality=92)
    return buffer.getvalue()


def _dusty(frames: list[Frame], stream: int, out: Path) -> list[Frame]:
    """``frames`` with one good part photographed through dust inserted two thirds of the way in."""
    dusty = [with_lens_dust(f.path.read_bytes()) for f in frames if f.label == "normal"]
    if not dusty:
        return frames
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"dusty_lens_{stream}.jpg"
    path.write_bytes(next((data for data in dusty if not held_out(hashlib.sha256(data).hexdigest())), dusty[0]))
    at = (2 * len(frames)) // 3
    return [*frames[:at], Frame(path, "normal", stream=stream, note=DUST), *frames[at:]]


def loop_streams(folder: ImageFolder | None, first: list[Frame], *, count: int, size: int, seed: int,
                 anomaly_rate: float, out: Path) -> tuple[list[Frame], list[Frame]]:
    """The first stream (``first`` and a dusty good part) and the second (new images and another)."""
    wanted = second_count(count)
    if folder is not None:
        shuffled = list(folder.test)
        random.Random(seed).shuffle(shuffled)   # as camera_frames shuffles: the rest are unused
        rest = shuffled[len(first):len(first) + wanted]
        if len(rest) < 2:
            raise UsageProblem(f"--model-loop: --count {count} leaves {len(rest)} of the {len(folder.test)} test "
                               f"images for the second stream; give --count {max(1, len(folder.test) - 6)} or less")
        later = [replace(frame, stream=2) for frame in rest]
    else:
        made = camera_frames(None, count=wanted, size=size, seed=seed + SECOND_SEED_OFFSET,
                             anomaly_rate=anomaly_rate, out=out / "second")
        later = [replace(frame, name=f"later_{frame.name}", stream=2) for frame in made]
    return _dusty(first, 1, out / "dust"), _dusty(later, 2, out / "dust")
