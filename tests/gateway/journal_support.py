"""What the journal tests share: image rows as ingest writes them, added in a known order."""
from __future__ import annotations

import hashlib
import time
from typing import Any

from batchsight.journal import ImageRecord, ImageState, Journal


def record(n: int | str, **overrides: Any) -> dict[str, Any]:
    image_id = hashlib.sha256(str(n).encode()).hexdigest()
    base = {"image_id": image_id, "file_name": f"cam-{n}.jpg", "path": f"/spool/{image_id}.jpg",
            "ext": "jpg", "size": 1000 + len(str(n)), "width": 640, "height": 480,
            "captured_at": "2024-05-01T10:00:00.000Z"}
    return {**base, **overrides}


def iid(n: int | str) -> str:
    return record(n)["image_id"]


def add_in_order(journal: Journal, numbers: range | list[int]) -> list[str]:
    """Add images with strictly increasing seen_at (the clock may not tick between two inserts)."""
    ids = []
    for n in numbers:
        assert journal.add(record(n))
        ids.append(iid(n))
        time.sleep(0.002)
    return ids


def state_of(journal: Journal, n: int) -> ImageState:
    found = journal.get(iid(n))
    assert found is not None
    return found.state


def row(journal: Journal, image_id: str | None) -> ImageRecord:
    """The journal's record of an image the test knows is there."""
    found = journal.get(image_id or "")
    assert found is not None, f"image {image_id} is not in the journal"
    return found
