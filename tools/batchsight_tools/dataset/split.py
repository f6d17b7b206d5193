"""Which images are held out for evaluation: a fixed share, chosen by image id.

Why by image id (the SHA-256 of the bytes) and not at random: the same image is on the same
side in every fit, evaluation and publish, on every machine, with no seed to keep; adding
images to a dataset never moves an existing one across, so a version fitted on a grown
dataset is still never evaluated on pictures it was fitted on; and the gate can re-evaluate
the current version on exactly the candidate's held-out images.
"""
from __future__ import annotations

HOLDOUT_PERCENT = 20   # one image in five (first 8 hex digits of the id, as a number, modulo 100, below 20)


def held_out(image_id: str) -> bool:
    """Whether the image belongs to the evaluation split."""
    return int(image_id[:8], 16) % 100 < HOLDOUT_PERCENT
