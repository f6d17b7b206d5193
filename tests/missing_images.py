"""Where the images without a published result are, for a crash test that timed out waiting.

A kill -9 test that misses one image in hundreds under CI load leaves nothing to read once its
temporary folder is gone. This gathers, for each camera frame no result message named, what the
gateway's journal says of it (state, batch), whether it was quarantined or is still in the drop
or staging folder, what the cloud's dead-letter queue holds, and the gateway's log lines that
name it, so the failure message itself tells where it stopped.
"""
from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from batchsight_tools.localcloud.hmi import Subscriber
from tests.support import CloudFixture, wait_for

if TYPE_CHECKING:
    from batchsight_tools.synth import SynthImage

LOG_LINES = 8  # per missing image
SHOWN = 20  # missing images described; a timeout with hundreds missing is told by the first ones


class JournalRow(NamedTuple):
    image_id: str
    state: str
    batch: str | None
    updated_at: float


def wait_for_every_result(hmi: Subscriber, frames: Sequence[SynthImage], timeout: float, what: str, *,
                          tmp: Path, cloud: CloudFixture) -> float:
    """``wait_for`` a result message per frame; on timeout the message says where the others are."""
    try:
        return wait_for(lambda: len(hmi.results) >= len(frames), timeout, what)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{explain(tmp, cloud, frames, hmi.results)}") from None


def explain(tmp: Path, cloud: CloudFixture, frames: Sequence[SynthImage], published: Iterable[str]) -> str:
    """A few lines per frame whose image id is not in ``published``."""
    done = set(published)
    journal = _journal(tmp / "work" / "journal.sqlite3")
    missing = [f for f in frames if (row := journal.get(f.path.name)) is None or row.image_id not in done]
    lines = [f"{len(missing)} of {len(frames)} frames; the first {min(SHOWN, len(missing))}:"]
    for frame in missing[:SHOWN]:
        row = journal.get(frame.path.name)
        lines.append(f"- {frame.path.name}: journal {row or 'has no row'}")
        lines.extend(f"    {where}" for where in _folders(tmp, frame.path.name))
        needle = row.image_id if row else frame.path.name
        lines.extend(f"    log: {line}" for line in _log_lines(tmp / "edge.log", needle, frame.path.name))
    lines.append(f"dead-letter queue: {_dead_letters(cloud)}")
    return "\n".join(["images without a result message:", *lines])


def _journal(path: Path) -> dict[str, JournalRow]:
    if not path.exists():
        return {}
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        rows = db.execute("SELECT file_name, image_id, state, batch_id, updated_at FROM images").fetchall()
    return {name: JournalRow(*rest) for name, *rest in rows}


def _folders(tmp: Path, name: str) -> list[str]:
    found = []
    for folder in ("drop", "work/staging", "work/quarantine", "work/spool"):
        hits = [p.name for p in (tmp / folder).glob(f"*{name}*")] if (tmp / folder).exists() else []
        if hits:
            found.append(f"{folder}: {hits}")
    return found


def _log_lines(log: Path, *needles: str) -> list[str]:
    if not log.exists():
        return []
    hits = [line.strip() for line in log.read_text(errors="replace").splitlines() if any(n in line for n in needles)]
    return [line[:300] for line in hits[-LOG_LINES:]]


def _dead_letters(cloud: CloudFixture) -> list[str]:
    response = cloud.client("sqs").receive_message(QueueUrl=cloud.outputs.dead_letter_queue_url,
                                                   MaxNumberOfMessages=10, MessageAttributeNames=["All"],
                                                   VisibilityTimeout=0)
    return [f"{json.loads(m['Body']).get('key')}: {m.get('MessageAttributes', {}).get('reason', {}).get('StringValue')}"
            for m in response.get("Messages", [])]
