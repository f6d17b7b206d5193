"""The component in the bench's own process: its logs as in production, and a journal filled fast.

The ingest and upload sections time the component's classes directly (``Ingestor``,
``CloudLink``); these set the scene for them.
"""
from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

from batchsight.config import Config
from batchsight.images import check_image
from batchsight.journal import Journal
from batchsight.logs import JsonFormatter


@contextlib.contextmanager
def component_logging(path: Path) -> Iterator[None]:
    """The component's JSON INFO logs, as in production, but into a file instead of stderr.

    Ingest logs one line per image; leaving logging off would flatter the figure.
    """
    logger = logging.getLogger("batchsight")
    handler = logging.FileHandler(path)
    handler.setFormatter(JsonFormatter())
    saved = (logger.level, logger.propagate)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        handler.close()
        logger.setLevel(saved[0])
        logger.propagate = saved[1]


def journal_quickly(config: Config, images: Iterable[tuple[str, bytes]]) -> float:
    """Spool and journal images as ingest records them (checked, named by SHA-256); seconds taken.

    This is set-up, not what is measured, so the journal skips its fsyncs here: ingest at its
    real cost would take minutes for 10,000 images.
    """
    spool = config.work_folder / "spool"
    spool.mkdir(parents=True, exist_ok=True)
    journal = Journal(config.journal_path)
    connection = getattr(journal, "_conn", None)
    if connection is not None:
        connection.execute("PRAGMA synchronous=OFF")
    started = time.perf_counter()
    try:
        for name, data in images:
            checked = check_image(data, config.ingest)
            path = spool / f"{checked.image_id}.{checked.ext}"
            path.write_bytes(data)
            journal.add({"image_id": checked.image_id, "file_name": name, "path": str(path),
                         "ext": checked.ext, "size": checked.size, "width": checked.width,
                         "height": checked.height, "captured_at": "2026-11-23T08:00:00.000Z"})
    finally:
        journal.close()
    return time.perf_counter() - started
