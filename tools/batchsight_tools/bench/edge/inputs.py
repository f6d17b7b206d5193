"""What the sections work on: the sample images, distinct copies of them, an edge configuration.

The images are ``../shared/data`` (casting 512x512, about 25 KB; circuit board 2000x1334,
about 1.3 MB). The journal keys an image by its SHA-256, so every copy must differ in bytes.
"""
from __future__ import annotations

import io
import os
import struct
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from PIL import Image


def shared_images(data: Path, kind: str) -> list[Path]:
    """The JPEGs of one set, every split; the casting stream replays a camera, so it counts too."""
    files = sorted(p for p in (data / kind).glob("*/*/*") if p.suffix.lower() in (".jpg", ".jpeg"))
    if not files:
        raise SystemExit(f"no {kind} images under {data / kind}: see ../shared/data/README.md")
    return files


def unique_jpeg(data: bytes, tag: int) -> bytes:
    """The same picture with a JPEG comment segment (COM) naming ``tag`` right after SOI.

    Replicated files must differ in bytes, or the journal (keyed by SHA-256) keeps only the
    first and quarantines the rest as duplicates; a comment changes nothing that decodes.
    """
    comment = f"batchsight bench copy {tag}".encode()
    return data[:2] + b"\xff\xfe" + struct.pack(">H", len(comment) + 2) + comment + data[2:]


def replicate(sources: Sequence[Path], count: int, folder: Path, prefix: str) -> list[Path]:
    """``count`` distinct files in ``folder``, cycling through ``sources``."""
    folder.mkdir(parents=True, exist_ok=True)
    originals = [p.read_bytes() for p in sources]
    paths = []
    for n in range(count):
        path = folder / f"{prefix}_{n:05d}.jpg"
        path.write_bytes(unique_jpeg(originals[n % len(originals)], n))
        paths.append(path)
    os.sync()  # written back now, so the timed sections do not share the disk with writeback
    return paths


def small_jpeg() -> bytes:
    """A 64x64 grey JPEG: the smallest image the edge accepts, for a backlog that costs no disk."""
    buffer = io.BytesIO()
    Image.new("L", (64, 64), color=128).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def edge_settings(work: Path, *, endpoint_url: str, mqtt_port: int = 1883,
                  **sections: dict[str, Any]) -> dict[str, Any]:
    """An edge configuration as the YAML file would hold it, for one bench run."""
    return {
        "site": "bench", "line": "line-1", "device": "gw-bench",
        "drop_folder": str(work / "drop"), "work_folder": str(work / "edge"),
        "aws": {"region": "us-east-1", "source_bucket": "bench-source", "final_bucket": "bench-final",
                "queue_url": f"{endpoint_url}/123456789012/bench-images",
                "state_machine_arn": "arn:aws:states:us-east-1:123456789012:stateMachine:bench",
                "endpoint_url": endpoint_url},
        "mqtt": {"host": "127.0.0.1", "port": mqtt_port},
        **sections,
    }
