"""journal.py on real SQLite files: adding, batches, quarantine, durability, threads (the image
states and the transition table: test_journal_transitions.py)."""
from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path


from batchsight.journal import ImageRecord, ImageState, Journal
from tests.gateway.journal_support import add_in_order, iid, record, row, state_of


# --- add / get ----------------------------------------------------------------------------------

def test_creates_parent_folder_and_file(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "er" / "journal.sqlite3"
    journal = Journal(path)
    try:
        assert path.is_file()
    finally:
        journal.close()


def test_add_then_get(journal: Journal) -> None:
    before = time.time()
    assert journal.add(record(1)) is True
    got = journal.get(iid(1))
    assert isinstance(got, ImageRecord)
    assert got.image_id == iid(1)
    assert got.file_name == "cam-1.jpg"
    assert (got.ext, got.width, got.height, got.size) == ("jpg", 640, 480, 1001)
    assert got.captured_at == "2024-05-01T10:00:00.000Z"
    assert got.state is ImageState.VALIDATED
    assert got.batch_id is None
    assert got.is_anomalous is None and got.confidence is None and got.result_json is None
    assert before <= got.seen_at <= time.time()


def test_get_unknown_is_none(journal: Journal) -> None:
    assert journal.get("0" * 64) is None


def test_same_image_twice_is_deduplicated(journal: Journal) -> None:
    assert journal.add(record(1)) is True
    assert journal.add(record(1, file_name="renamed.jpg", path="/elsewhere.jpg")) is False
    got = journal.get(iid(1))
    assert got is not None and got.file_name == "cam-1.jpg"  # the first sighting wins
    assert journal.counts()["validated"] == 1


def test_a_group_tells_each_row_new_or_known_within_the_group_too(journal: Journal) -> None:
    journal.add(record(1))
    rows = [record(2), record(1), record(3), record(2, file_name="again.jpg")]
    assert journal.add_many(rows, state=ImageState.RECEIVED) == [True, False, True, False]
    got = journal.get(iid(2))
    assert got is not None and got.file_name == "cam-2.jpg"  # the first sighting wins
    assert journal.counts()["received"] == 2 and journal.counts()["validated"] == 1


def test_duplicate_does_not_reset_state(journal: Journal) -> None:
    journal.add(record(1))
    journal.advance([iid(1)], ImageState.UPLOADED)
    assert journal.add(record(1)) is False
    assert state_of(journal, 1) is ImageState.UPLOADED

# --- batches ------------------------------------------------------------------------------------

def test_waiting_on_empty_journal(journal: Journal) -> None:
    assert journal.waiting() == (0, None)


def test_waiting_counts_unbatched_validated_images(journal: Journal) -> None:
    add_in_order(journal, range(3))
    count, oldest = journal.waiting()
    first = journal.get(iid(0))
    assert count == 3 and first is not None and oldest == first.seen_at


def test_cut_batch_takes_oldest_first_and_respects_max(journal: Journal) -> None:
    ids = add_in_order(journal, range(5))
    assert journal.cut_batch("b1", max_images=3) == 3
    assert [r.image_id for r in journal.batch_images("b1")] == ids[:3]
    assert all(r.batch_id == "b1" for r in journal.batch_images("b1"))
    count, oldest = journal.waiting()
    fourth = journal.get(ids[3])
    assert count == 2 and fourth is not None and oldest == fourth.seen_at
    assert journal.cut_batch("b2", max_images=3) == 2
    assert [r.image_id for r in journal.batch_images("b2")] == ids[3:]
    assert journal.waiting() == (0, None)


def test_cut_with_nothing_waiting_creates_no_batch(journal: Journal) -> None:
    assert journal.cut_batch("empty", max_images=10) == 0
    assert journal.open_batches() == []
    assert journal.batch_done_unsummarized() == []


def test_images_added_after_a_cut_wait_for_the_next(journal: Journal) -> None:
    add_in_order(journal, [1])
    journal.cut_batch("b1", max_images=10)
    add_in_order(journal, [2])
    assert journal.waiting()[0] == 1
    assert [r.image_id for r in journal.batch_images("b1")] == [iid(1)]


def test_batched_image_is_not_waiting_even_when_still_validated(journal: Journal) -> None:
    add_in_order(journal, [1])
    journal.cut_batch("b1", max_images=10)
    assert state_of(journal, 1) is ImageState.VALIDATED
    assert journal.waiting() == (0, None)


def test_open_batches_oldest_first_until_submitted(journal: Journal) -> None:
    add_in_order(journal, range(4))
    journal.cut_batch("b-old", max_images=2)
    time.sleep(0.002)
    journal.cut_batch("b-new", max_images=2)
    assert journal.open_batches() == ["b-old", "b-new"]

    # a batch half way through its upload is still open (resumed after a restart)
    journal.advance([iid(0)], ImageState.ENQUEUED)
    assert journal.open_batches() == ["b-old", "b-new"]
    journal.advance([iid(1)], ImageState.UPLOADED)
    assert journal.open_batches() == ["b-old", "b-new"]
    # once every image is submitted it is no longer open
    journal.advance([iid(0), iid(1)], ImageState.SUBMITTED)
    assert journal.open_batches() == ["b-new"]
    journal.advance([iid(2), iid(3)], ImageState.SUBMITTED)
    assert journal.open_batches() == []


def test_unbatched_images_are_not_an_open_batch(journal: Journal) -> None:
    add_in_order(journal, range(2))
    assert journal.open_batches() == []


def test_set_execution_is_stored(journal: Journal, tmp_path: Path) -> None:
    add_in_order(journal, [1])
    journal.cut_batch("b1", max_images=5)
    journal.set_execution("b1", "arn:aws:states:us-east-1:1:execution:sm:b1")
    with sqlite3.connect(tmp_path / "work" / "journal.sqlite3") as db:
        row = db.execute("SELECT execution_arn, image_count FROM batches WHERE batch_id='b1'").fetchone()
    assert row == ("arn:aws:states:us-east-1:1:execution:sm:b1", 1)


def test_batch_done_unsummarized_and_mark_summarized(journal: Journal) -> None:
    add_in_order(journal, range(4))
    journal.cut_batch("b1", max_images=2)
    time.sleep(0.002)
    journal.cut_batch("b2", max_images=2)
    everything = [iid(n) for n in range(4)]
    journal.advance(everything, ImageState.RESULT_STORED)
    assert journal.batch_done_unsummarized() == []
    journal.advance([iid(0)], ImageState.ALERTED)
    assert journal.batch_done_unsummarized() == []          # b1 has one image left
    journal.advance([iid(1), iid(2), iid(3)], ImageState.ALERTED)
    assert journal.batch_done_unsummarized() == ["b1", "b2"]  # oldest first
    journal.mark_summarized("b1")
    assert journal.batch_done_unsummarized() == ["b2"]
    journal.mark_summarized("b2")
    assert journal.batch_done_unsummarized() == []


def test_in_state_orders_by_seen_and_limits(journal: Journal) -> None:
    ids = add_in_order(journal, range(5))
    assert [r.image_id for r in journal.in_state(ImageState.VALIDATED)] == ids
    assert [r.image_id for r in journal.in_state(ImageState.VALIDATED, limit=2)] == ids[:2]
    assert journal.in_state(ImageState.ALERTED) == []


# --- quarantine and counts -------------------------------------------------------------------------

def test_counts_cover_every_state_and_quarantine(journal: Journal) -> None:
    counts = journal.counts()
    assert counts == {**{s.value: 0 for s in ImageState}, "quarantined": 0}
    add_in_order(journal, range(3))
    journal.advance([iid(0)], ImageState.UPLOADED)
    journal.quarantined("/q/a.jpg", "empty file (0 bytes)")
    journal.quarantined("/q/b.jpg", "not a JPEG or PNG file")
    counts = journal.counts()
    assert counts["validated"] == 2 and counts["uploaded"] == 1 and counts["quarantined"] == 2
    assert counts["alerted"] == 0


def test_quarantined_same_path_counts_once_with_latest_reason(journal: Journal, tmp_path: Path) -> None:
    journal.quarantined("/q/a.jpg", "first")
    journal.quarantined("/q/a.jpg", "second")
    assert journal.counts()["quarantined"] == 1
    with sqlite3.connect(tmp_path / "work" / "journal.sqlite3") as db:
        assert db.execute("SELECT reason FROM quarantine").fetchall() == [("second",)]


# --- durability ---------------------------------------------------------------------------------

def test_everything_survives_close_and_reopen(open_journal: Callable[[], Journal], tmp_path: Path) -> None:
    first = open_journal()
    add_in_order(first, range(3))
    first.cut_batch("b1", max_images=2)
    first.advance([iid(0)], ImageState.UPLOADED)
    first.quarantined("/q/x.png", "image does not decode")
    first.close()

    path = tmp_path / "work" / "journal.sqlite3"
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"

    second = open_journal()
    assert state_of(second, 0) is ImageState.UPLOADED
    assert [r.image_id for r in second.batch_images("b1")] == [iid(0), iid(1)]
    assert second.open_batches() == ["b1"]
    assert second.waiting()[0] == 1
    assert second.counts()["quarantined"] == 1
    assert second.add(record(0)) is False  # dedupe survives a restart


def test_committed_rows_are_visible_to_another_connection_while_open(journal: Journal, tmp_path: Path) -> None:
    """Each step commits at once: a crash right after add() keeps the row."""
    journal.add(record(7))
    other = sqlite3.connect(tmp_path / "work" / "journal.sqlite3")
    try:
        assert other.execute("SELECT state FROM images WHERE image_id=?", (iid(7),)).fetchone() == ("validated",)
    finally:
        other.close()


def test_four_threads_adding_200_images_lose_nothing(journal: Journal, tmp_path: Path) -> None:
    errors: list[BaseException] = []
    results: list[bool] = []
    start = threading.Barrier(5)

    def adder(worker: int) -> None:
        try:
            start.wait()
            for k in range(50):
                results.append(journal.add(record(f"{worker}-{k}")))
                if k % 10 == 0:
                    journal.waiting()
                    journal.counts()
        except BaseException as exc:  # noqa: BLE001 - surfaced below
            errors.append(exc)

    def cutter() -> None:
        try:
            start.wait()
            for n in range(10):
                journal.cut_batch(f"batch-{n}", max_images=7)
                time.sleep(0.001)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=adder, args=(w,)) for w in range(4)] + [threading.Thread(target=cutter)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not errors
    assert results == [True] * 200
    assert journal.counts()["validated"] == 200
    waiting, _ = journal.waiting()
    with sqlite3.connect(tmp_path / "work" / "journal.sqlite3") as db:
        assert db.execute("SELECT COUNT(*) FROM images").fetchone()[0] == 200
        batched = db.execute("SELECT COUNT(*) FROM images WHERE batch_id IS NOT NULL").fetchone()[0]
        in_batches = db.execute("SELECT COALESCE(SUM(image_count), 0) FROM batches").fetchone()[0]
    assert batched == in_batches  # every cut recorded exactly the images it took
    assert batched + waiting == 200


def test_a_journal_from_before_the_edge_modes_opens_with_every_image_bound_for_the_cloud(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite3"
    old = sqlite3.connect(path)
    old.executescript("""
        CREATE TABLE images (image_id TEXT PRIMARY KEY, file_name TEXT NOT NULL, path TEXT NOT NULL,
            ext TEXT NOT NULL, size INTEGER NOT NULL, width INTEGER NOT NULL, height INTEGER NOT NULL,
            captured_at TEXT NOT NULL, seen_at REAL NOT NULL, state TEXT NOT NULL, batch_id TEXT,
            is_anomalous INTEGER, confidence REAL, result_json TEXT, updated_at REAL NOT NULL);
        INSERT INTO images VALUES ('""" + iid(1) + """', 'a.jpg', '/a', 'jpg', 1, 64, 64,
            '2026-11-23T10:00:00.000Z', 1.0, 'validated', NULL, NULL, NULL, NULL, 1.0);
    """)
    old.close()
    journal = Journal(path)
    try:
        assert row(journal, iid(1)).route == "cloud"
        assert journal.waiting()[0] == 1 and journal.unrouted(limit=10) == []
        assert journal.judgements() == {"judged_at_edge": 0, "audited": 0, "corrected": 0}
    finally:
        journal.close()
