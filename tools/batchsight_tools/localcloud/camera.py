"""A camera that drops frames into a folder the ways real ones do.

Most frames are written and closed in one go; some are written slowly in pieces, and some
are written under a temporary name and renamed into place. The watcher must take each
only when it is complete.
"""
from __future__ import annotations

import os
import time
from pathlib import Path


def drop(source: Path, folder: Path, *, style: str, name: str | None = None) -> float:
    """Copy ``source`` into ``folder`` (as ``name``, by default its own); returns the time the
    file became complete."""
    data = source.read_bytes()
    name = name or source.name
    target = folder / name
    if style == "slow":
        with target.open("wb") as out:
            half = len(data) // 2
            out.write(data[:half])
            out.flush()
            time.sleep(0.4)
            out.write(data[half:])
    elif style == "rename":
        temporary = folder / f".{name}.tmp"
        temporary.write_bytes(data)
        os.replace(temporary, target)
    else:
        target.write_bytes(data)
    return time.time()


def style_for(index: int) -> str:
    """Every seventh frame written slowly, every fifth renamed into place."""
    if index % 7 == 3:
        return "slow"
    if index % 5 == 1:
        return "rename"
    return "plain"
