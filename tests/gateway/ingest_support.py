"""What the ingest tests share: a camera's images, dropping them, and looking at the folders."""
from __future__ import annotations

import io
import uuid
from pathlib import Path

from PIL import Image

from batchsight.config import Config

AWS = {"source_bucket": "src", "final_bucket": "final", "queue_url": "http://127.0.0.1/q",
       "state_machine_arn": "arn:aws:states:us-east-1:123456789012:stateMachine:sm"}


def make_image(fmt: str = "JPEG", size: tuple[int, int] = (160, 120), seed: int = 0) -> bytes:
    image = Image.new("RGB", size, ((seed * 37) % 256, (seed * 91) % 256, 120))
    image.paste((255, 255, 255), (seed % 50, 10, seed % 50 + 40, 50))
    buffer = io.BytesIO()
    image.save(buffer, fmt)
    return buffer.getvalue()


def drop(config: Config, name: str, data: bytes) -> Path:
    path = config.drop_folder / name
    path.write_bytes(data)
    return path


def staged(config: Config, name: str, data: bytes) -> Path:
    """A file as a crash leaves it in staging: '{uuid hex}-{name in the drop folder}'."""
    path = config.work_folder / "staging" / f"{uuid.uuid4().hex}-{name}"
    path.write_bytes(data)
    return path


def all_files(root: Path) -> list[Path]:
    """Every regular file under root except the journal's own files."""
    return sorted(p for p in root.rglob("*") if p.is_file() and not p.name.startswith("journal.sqlite3"))


def quarantined_files(config: Config) -> list[Path]:
    return sorted(p for p in config.quarantine_folder.iterdir() if not p.name.endswith(".reason.txt"))
