"""Quarantine's crash windows (issue #23): a kill anywhere in ``quarantine()`` ends, after the next
start, in exactly one entry: the file, its reason file and its journal row.

A forked child runs the real code and is killed with SIGKILL at one point (test_crash_windows.py's
``die_at``): after the claim, just before and just after the move into quarantine, after the
journal row. The parent then starts over as the component does: ``recover_staging`` (which
finishes quarantine entries first) and the verifier's pass over what is still ``received``.
"""
from __future__ import annotations

import signal
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from batchsight import durable
from batchsight import quarantine as quarantine_module
from batchsight.config import Config
from batchsight.ingest import Ingestor
from batchsight.journal import ImageState, Journal
from batchsight.quarantine import NO_REASON, PENDING, recover, set_aside
from batchsight.verifier import PixelVerifier
from tests.gateway.ingest_support import drop, quarantined_files
from tests.gateway.journal_support import row
from tests.gateway.test_crash_windows import die_at, in_child
from tests.gateway.test_verifier import scrambled

POINTS = {  # where the child dies: (owner, function, before or after it)
    "claimed": (quarantine_module, "_claim", "after"),
    "before the move": (durable, "move", "before"),
    "after the move": (durable, "move", "after"),
    "after the row": (quarantine_module, "_record", "after"),
}
NOT_AN_IMAGE = b"exposure 1/250, gain 2\n"


def kept(config: Config) -> list[Path]:
    """The files in quarantine, not the hidden ones on their way in."""
    return [path for path in quarantined_files(config) if not path.name.startswith(".")]


def entries(config: Config, journal: Journal) -> list[tuple[bytes, str, str | None]]:
    """Each quarantined file: its bytes, its reason file's text, its journal row's reason."""
    return [(path.read_bytes(), path.with_name(path.name + ".reason.txt").read_text().strip(),
             journal.quarantine_reason(str(path))) for path in kept(config)]


def rows(journal: Journal) -> list[tuple[str, str]]:
    return journal._conn.execute("SELECT path, reason FROM quarantine").fetchall()  # noqa: SLF001


def pending(config: Config) -> list[Path]:
    return sorted(config.quarantine_folder.glob(PENDING + "*"))


def restart(config: Config, journal: Journal) -> None:
    """What the component does at start: staging (quarantine entries first), then the decoding
    of every image still ``received``."""
    Ingestor(config, journal).recover_staging()
    verifier = PixelVerifier(config, journal)
    try:
        verifier.verify(journal.ids_in_state(ImageState.RECEIVED))
    finally:
        verifier.stop()


def kill(point: str, work: Any) -> None:
    owner, name, when = POINTS[point]

    def run() -> None:
        with die_at(owner, name, when=when):
            work()

    assert in_child(run) == -signal.SIGKILL


@pytest.mark.parametrize("point", POINTS)
def test_a_kill_while_ingest_quarantines_a_file_ends_in_one_entry(config: Config, journal: Journal,
                                                                  ingestor: Ingestor, point: str) -> None:
    path = drop(config, "notes.jpg", NOT_AN_IMAGE)
    kill(point, lambda: Ingestor(config, Journal(config.journal_path)).ingest(path))
    [intent] = pending(config)
    if point == "before the move":
        reason_file = intent.with_name(intent.name[len(PENDING):] + ".reason.txt")
        assert kept(config) == [] and reason_file.exists(), "the reason is written before the move"

    restart(config, journal)

    [(data, reason, recorded)] = entries(config, journal)
    assert data == NOT_AN_IMAGE and reason.startswith("not a JPEG or PNG") and recorded == reason
    assert len(rows(journal)) == 1 and journal.counts()["quarantined"] == 1
    assert pending(config) == [] and list((config.work_folder / "staging").iterdir()) == []
    assert not path.exists()


@pytest.mark.parametrize("point", POINTS)
def test_a_kill_while_an_image_is_set_aside_ends_in_one_entry(config: Config, journal: Journal,
                                                              ingestor: Ingestor, point: str) -> None:
    data = scrambled(3)
    [image_id] = [o.image_id for o in ingestor.ingest_many([drop(config, "part.jpg", data)])]
    image = row(journal, image_id)
    reason = "image does not decode: what the decoder said"
    kill(point, lambda: set_aside(config, Journal(config.journal_path), image, reason))

    restart(config, journal)

    [(kept, text, recorded)] = entries(config, journal)
    assert kept == data and text == recorded == reason, "the reason given at the kill, not 'spool file gone'"
    assert len(rows(journal)) == 1 and journal.get(image_id or "") is None
    assert pending(config) == [] and list((config.work_folder / "spool").iterdir()) == []


def test_an_intent_lost_in_a_power_cut_is_taken_back_and_the_file_quarantined_once(
        config: Config, journal: Journal, ingestor: Ingestor) -> None:
    """Written but not yet synced when the power went: empty after the reboot; nothing had moved."""
    path = drop(config, "notes.jpg", NOT_AN_IMAGE)
    kill("claimed", lambda: Ingestor(config, Journal(config.journal_path)).ingest(path))
    [intent] = pending(config)
    intent.write_bytes(b"")
    restart(config, journal)
    [(data, reason, recorded)] = entries(config, journal)
    assert data == NOT_AN_IMAGE and reason == recorded and len(rows(journal)) == 1
    assert pending(config) == []


def test_a_file_without_its_reason_is_given_one_and_a_row(config: Config, journal: Journal) -> None:
    """As the version before this one left it, killed between its move and its reason file."""
    config.quarantine_folder.mkdir(parents=True)
    left = config.quarantine_folder / "20260101T000000-notes.jpg"
    left.write_bytes(NOT_AN_IMAGE)
    explained = config.quarantine_folder / "20260101T000001-cut.jpg"
    explained.write_bytes(b"\xff\xd8 cut")
    journal.quarantined(str(explained), "image does not decode: truncated")  # its reason file lost by hand

    assert recover(config, journal) == 2
    assert recover(config, journal) == 0, "once"

    assert entries(config, journal) == [(NOT_AN_IMAGE, NO_REASON, NO_REASON),
                                        (b"\xff\xd8 cut", "image does not decode: truncated",
                                         "image does not decode: truncated")]
    assert len(rows(journal)) == 2


def test_a_row_the_full_disk_refused_is_written_when_the_image_is_set_aside_again(
        config: Config, journal: Journal, ingestor: Ingestor, monkeypatch: pytest.MonkeyPatch) -> None:
    """The move was made, the journal could not record it; the verifier retries the image, whose
    spool file is gone now: the entry is finished with its first reason, not a second 'gone' one."""
    [image_id] = [o.image_id for o in ingestor.ingest_many([drop(config, "part.jpg", scrambled(4))])]
    image = row(journal, image_id)
    real = Journal.set_aside

    def full(self: Journal, *args: Any) -> None:
        monkeypatch.setattr(Journal, "set_aside", real)
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(Journal, "set_aside", full)
    with pytest.raises(sqlite3.OperationalError):
        set_aside(config, journal, image, "image does not decode: first")
    assert not Path(image.path).exists() and len(pending(config)) == 1

    set_aside(config, journal, image, f"spool file {image.path} of image {image_id} is gone")

    [(_, text, recorded)] = entries(config, journal)
    assert text == recorded == "image does not decode: first"
    assert len(rows(journal)) == 1 and journal.get(image_id or "") is None and pending(config) == []


def test_recovery_leaves_an_entry_on_its_way_in_to_its_writer(config: Config, journal: Journal,
                                                              ingestor: Ingestor,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """After a full disk the main loop recovers staging while the verifier's thread may be quarantining."""
    found = []
    real = durable.move

    def move(source: Path, target: Path) -> None:
        found.append(recover(config, journal))  # the other thread, at the worst moment
        real(source, target)

    monkeypatch.setattr(durable, "move", move)
    outcome = ingestor.ingest(drop(config, "notes.jpg", NOT_AN_IMAGE))
    assert found == [0] and outcome.reason is not None
    assert len(entries(config, journal)) == len(rows(journal)) == 1 and pending(config) == []
