"""The running component's last status, kept in a small file in its work folder.

The component publishes its status (alarms, the cloud link's state) as a retained MQTT message
for HMIs; ``batchsight status`` must work without a broker and with the component stopped, so
the component also writes the same payload here each time it publishes it, and the command
reads it back and says how old it is.
"""
from __future__ import annotations

import json
import os
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any

# The component writes its status every few seconds while it runs (runtime.STATUS_EVERY_SECONDS)
# and "stopped" when it stops; a "running" status older than this means it is stuck or was killed.
STALE_AFTER_SECONDS = 60.0


def write(path: Path, payload: dict[str, Any]) -> None:
    """Replace the file in one step (a reader never sees half a status)."""
    handle, temporary = tempfile.mkstemp(prefix=".status-", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            json.dump(payload, out, separators=(",", ":"))
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def written_at(payload: dict[str, Any], path: Path) -> float:
    """When the status was written: its own ``updated_at``, else the file's modification time."""
    try:
        return datetime.fromisoformat(str(payload["updated_at"]).replace("Z", "+00:00")).timestamp()
    except (KeyError, ValueError):
        return path.stat().st_mtime


def read(path: Path) -> tuple[dict[str, Any], float] | None:
    """The last status and when it was written; None when there is none (the component has not
    run with this work folder, or ran before it wrote one). An unreadable file counts as none."""
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(payload, dict):
        return None
    return payload, written_at(payload, path)
