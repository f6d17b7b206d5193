"""The journal: every image's state in SQLite (WAL), so a crash anywhere loses nothing.

An image moves through ``ImageState`` along the table in lifecycle.py; each step is recorded in
its own transaction after the side effect it records, so a restart repeats at most the last
step, and every step is idempotent (same S3 key, same execution name, same result key).

The journal owns every write to the file's tables, the outbox's included: a hand-off
(``Journal.handoff``) queues MQTT messages and claims the images or batches they announce in
one transaction (publishers/outbox.py says why), and every change of an image's state, in a
hand-off too, passes the one transition guard.
"""
from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from batchsight.journal_schema import ImageRecord, OutboxMessage, create_tables
from batchsight.journal_shadow import ShadowRecords
from batchsight.lifecycle import BATCHED_ROUTES, ENTRY, GONE, IllegalTransition, ImageState, Move, Route, check, sources

__all__ = ["Handoff", "IllegalTransition", "ImageRecord", "ImageState", "Journal", "OutboxMessage", "Route"]
_LOOKUP = 500  # image ids per SELECT ... IN (...): far below SQLite's limit on parameters


def _guard(to: ImageState | None, move: Move) -> tuple[str, tuple[str, ...]]:
    """The transition table's answer for a statement that moves a set at once: ``state IN (...)``."""
    states = sources(to, move)
    return f"state IN ({', '.join('?' * len(states))})", tuple(state.value for state in states)


_DECODED = _guard(ImageState.VALIDATED, Move.STEP)          # received -> validated
_RESUBMITTED = _guard(ImageState.VALIDATED, Move.RESUBMIT)  # submitted -> validated, out of its batch
_STORED = _guard(ImageState.RESULT_STORED, Move.STEP)       # any earlier state -> result_stored
_ALERTED = _guard(ImageState.ALERTED, Move.STEP)            # result_stored -> alerted
_SET_ASIDE = _guard(GONE, Move.SET_ASIDE)                   # received or validated -> quarantine
_PRUNED = _guard(GONE, Move.PRUNE)                          # alerted -> forgotten


class Handoff:
    """One journal transaction: queue MQTT messages and claim what they announce, all or nothing."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db
        self.queued: list[tuple[str, bytes]] = []  # what put() queued: the plant-floor sinks read it after commit

    def put(self, topic: str, body: bytes, *, retain: bool = False) -> int:
        cursor = self._db.execute("INSERT INTO outbox (topic, body, retain, created_at) VALUES (?, ?, ?, ?)",
                                  (topic, body, int(retain), time.time()))
        self.queued.append((topic, body))
        return int(cursor.lastrowid or 0)

    def store_result(self, image_id: str, **fields: Any) -> bool:
        """An image's result (``fields``: its columns) stored, in the transaction that hands it off
        (the edge's verdicts: one sync before the PLC's message, not two); False when it is stored already."""
        guard, states = _STORED
        assignments = "".join(f", {name}=?" for name in fields)
        cursor = self._db.execute(f"UPDATE images SET state=?, updated_at=?{assignments} WHERE image_id=? AND {guard}",
                                  (ImageState.RESULT_STORED.value, time.time(), *fields.values(), image_id, *states))
        return cursor.rowcount == 1

    def claim_image(self, image_id: str, *, corrected: bool | None = None) -> bool:
        """result_stored -> alerted; False when the image is not (or no longer) result_stored.

        ``corrected`` records, for an audited image, whether the cloud overruled the edge.
        """
        guard, states = _ALERTED
        cursor = self._db.execute(f"UPDATE images SET state=?, updated_at=?, corrected=? WHERE image_id=? AND {guard}",
                                  (ImageState.ALERTED.value, time.time(), None if corrected is None else int(corrected),
                                   image_id, *states))
        return cursor.rowcount == 1

    def claim_audit(self, image_id: str, local_json: str) -> bool:
        """Record the local verdict of an image the cloud will check; False when already routed."""
        cursor = self._db.execute("UPDATE images SET route=?, local_json=?, updated_at=? WHERE image_id=?"
                                  " AND route IS NULL AND state=?",
                                  (Route.AUDIT.value, local_json, time.time(), image_id,
                                   ImageState.VALIDATED.value))
        return cursor.rowcount == 1

    def claim_batch(self, batch_id: str) -> bool:
        """Mark a batch summarized; False when it already was."""
        cursor = self._db.execute("UPDATE batches SET summarized_at=? WHERE batch_id=? AND summarized_at IS NULL",
                                  (time.time(), batch_id))
        return cursor.rowcount == 1


class Journal(ShadowRecords):
    """Thread-safe access to the journal file; one connection, serialized by a lock (the shadow
    model's figures: journal_shadow.py)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._conn.row_factory = sqlite3.Row
        self._lock = threading.RLock()
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")
        create_tables(self._conn)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
                self._conn.execute("COMMIT")
            except BaseException:
                # SQLite rolls back by itself after SQLITE_FULL or an I/O error (a second ROLLBACK
                # would raise and hide the cause); a transaction left open would refuse every
                # later BEGIN, so roll back whatever is still open, a failed COMMIT included.
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise

    @contextmanager
    def handoff(self) -> Iterator[Handoff]:
        """One transaction: every message queued and everything claimed inside commits together."""
        with self._tx() as db:
            yield Handoff(db)

    def add(self, record: dict[str, Any], *, state: ImageState = ImageState.VALIDATED) -> bool:
        """Journal one image checked in full; False if the same bytes are already known."""
        return self.add_many([record], state=state)[0]

    def add_many(self, records: list[dict[str, Any]], *, state: ImageState) -> list[bool]:
        """Journal images in one transaction (ingest's group commit); for each, False if the
        same bytes are already known (journaled before, or earlier in ``records``).

        One lookup and one executemany per group: a statement per row cost ingest 11 us an
        image, as much as its rename. ``record["route"]`` None leaves it to the local detector;
        missing means the cloud.
        """
        if state not in ENTRY:
            raise IllegalTransition(f"an image cannot be journaled as {state.value}")
        now = time.time()
        stamps = {"seen_at": now, "state": state.value, "updated_at": now}
        with self._tx() as db:
            known = {row[0] for row in db.execute(
                f"SELECT image_id FROM images WHERE image_id IN ({','.join('?' * len(records))})",
                [record["image_id"] for record in records])}
            is_new = []
            for record in records:
                is_new.append(record["image_id"] not in known)
                known.add(record["image_id"])
            db.executemany(
                "INSERT OR IGNORE INTO images (image_id, file_name, path, ext, size, width, height,"
                " captured_at, seen_at, state, updated_at, route, part_id, lot) VALUES (:image_id, :file_name,"
                " :path, :ext, :size, :width, :height, :captured_at, :seen_at, :state, :updated_at, :route,"
                " :part_id, :lot)",
                [{"route": Route.CLOUD.value, "part_id": None, "lot": None, **record, **stamps} for record in records])
            return is_new

    def get(self, image_id: str) -> ImageRecord | None:
        with self._lock:
            row = self._conn.execute("SELECT * FROM images WHERE image_id=?", (image_id,)).fetchone()
        return ImageRecord.from_row(row) if row else None

    def in_state(self, state: ImageState, *, limit: int = 1000) -> list[ImageRecord]:
        with self._lock:
            rows = self._conn.execute("SELECT * FROM images WHERE state=? ORDER BY seen_at LIMIT ?",
                                      (state.value, limit)).fetchall()
        return [ImageRecord.from_row(r) for r in rows]

    def get_many(self, image_ids: list[str]) -> list[ImageRecord]:
        with self._lock:
            rows = self._conn.execute(f"SELECT * FROM images WHERE image_id IN ({', '.join('?' * len(image_ids))})",
                                      image_ids).fetchall()
        return [ImageRecord.from_row(r) for r in rows]

    def validated(self, image_ids: list[str]) -> None:
        """Received images whose pixels decoded may now be judged and batched, in one statement."""
        guard, states = _DECODED
        with self._tx() as db:
            db.executemany(f"UPDATE images SET state=?, updated_at=? WHERE image_id=? AND {guard}",
                           [(ImageState.VALIDATED.value, time.time(), i, *states) for i in image_ids])

    def ids_in_state(self, state: ImageState) -> list[str]:
        with self._lock:
            rows = self._conn.execute("SELECT image_id FROM images WHERE state=? ORDER BY seen_at",
                                      (state.value,)).fetchall()
        return [r[0] for r in rows]

    def batch_images(self, batch_id: str) -> list[ImageRecord]:
        with self._lock:
            rows = self._conn.execute("SELECT * FROM images WHERE batch_id=? ORDER BY seen_at",
                                      (batch_id,)).fetchall()
        return [ImageRecord.from_row(r) for r in rows]

    def waiting(self) -> tuple[int, float | None]:
        """Images for the cloud not in any batch yet, and when the oldest was seen."""
        with self._lock:
            row = self._conn.execute("SELECT COUNT(*), MIN(seen_at) FROM images"
                                     " WHERE state=? AND batch_id IS NULL AND route IN (?, ?)",
                                     (ImageState.VALIDATED.value, *BATCHED_ROUTES)).fetchone()
        return int(row[0]), row[1]

    def unrouted(self, *, limit: int) -> list[ImageRecord]:
        """Images waiting for the local detector, oldest first."""
        with self._lock:
            rows = self._conn.execute("SELECT * FROM images WHERE state=? AND route IS NULL"
                                      " ORDER BY seen_at LIMIT ?",
                                      (ImageState.VALIDATED.value, limit)).fetchall()
        return [ImageRecord.from_row(r) for r in rows]

    def route_to_cloud(self, image_ids: list[str] | None = None) -> int:
        """Send images still waiting for the local detector (all, or these) to the cloud."""
        with self._tx() as db:
            if image_ids is None:
                return int(db.execute("UPDATE images SET route=? WHERE route IS NULL AND state=?",
                                      (Route.CLOUD.value, ImageState.VALIDATED.value)).rowcount)
            return sum(db.execute("UPDATE images SET route=? WHERE image_id=? AND route IS NULL",
                                  (Route.CLOUD.value, i)).rowcount for i in image_ids)

    def cut_batch(self, batch_id: str, *, max_images: int) -> int:
        """Assign the oldest waiting images to a new batch, atomically. Their state stays validated:
        joining a batch is not a change of state, and leaving one only happens by resubmit."""
        with self._tx() as db:
            ids = [r[0] for r in db.execute(
                "SELECT image_id FROM images WHERE state=? AND batch_id IS NULL AND route IN (?, ?)"
                " ORDER BY seen_at LIMIT ?", (ImageState.VALIDATED.value, *BATCHED_ROUTES, max_images))]
            if not ids:
                return 0
            db.executemany("UPDATE images SET batch_id=? WHERE image_id=?", [(batch_id, i) for i in ids])
            db.execute("INSERT INTO batches (batch_id, created_at, image_count) VALUES (?, ?, ?)",
                       (batch_id, time.time(), len(ids)))
            return len(ids)

    def open_batches(self) -> list[str]:
        """Batches with images not yet submitted, oldest first (resumed after a restart)."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT DISTINCT i.batch_id FROM images i JOIN batches b USING(batch_id)"
                " WHERE i.state IN (?, ?, ?) ORDER BY b.created_at",
                (ImageState.VALIDATED.value, ImageState.UPLOADED.value, ImageState.ENQUEUED.value)).fetchall()
        return [r[0] for r in rows]

    def advance(self, image_ids: list[str], to: ImageState, **fields: Any) -> None:
        """Move images a step along the pipeline to ``to``, all or none; repeating a step is a
        no-op, a move the transition table does not allow (back, or past the result) is a bug.

        The states of the whole set are read first, checked, then written in one executemany.
        """
        assignments = ", ".join(f"{k}=:{k}" for k in ("state", "updated_at", *fields))
        now = time.time()
        with self._tx() as db:
            current: dict[str, ImageState] = {}
            for start in range(0, len(image_ids), _LOOKUP):
                chunk = image_ids[start:start + _LOOKUP]
                current.update((row[0], ImageState(row[1])) for row in db.execute(
                    f"SELECT image_id, state FROM images WHERE image_id IN ({', '.join('?' * len(chunk))})", chunk))
            for image_id in image_ids:
                if image_id not in current:
                    raise IllegalTransition(f"unknown image {image_id}")
                check(image_id, current[image_id], to)
            db.executemany(f"UPDATE images SET {assignments} WHERE image_id=:image_id",
                           [{**fields, "state": to.value, "updated_at": now, "image_id": i} for i in image_ids])

    def set_execution(self, batch_id: str, execution_arn: str) -> None:
        with self._tx() as db:
            db.execute("UPDATE batches SET execution_arn=? WHERE batch_id=?", (execution_arn, batch_id))

    def batch_done_unsummarized(self) -> list[str]:
        """Batches whose every image is alerted but whose summary is not yet published."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT b.batch_id FROM batches b WHERE b.summarized_at IS NULL AND NOT EXISTS"
                " (SELECT 1 FROM images i WHERE i.batch_id=b.batch_id AND i.state<>?)"
                " ORDER BY b.created_at", (ImageState.ALERTED.value,)).fetchall()
        return [r[0] for r in rows]

    def mark_summarized(self, batch_id: str) -> None:
        with self._tx() as db:
            db.execute("UPDATE batches SET summarized_at=? WHERE batch_id=?", (time.time(), batch_id))

    def quarantined(self, path: str, reason: str) -> None:
        with self._tx() as db:
            db.execute("INSERT OR REPLACE INTO quarantine (path, reason, at) VALUES (?, ?, ?)",
                       (path, reason, time.time()))

    def quarantine_reason(self, path: str) -> str | None:
        """The reason the quarantine table gives for ``path``; None when it has no row."""
        with self._lock:
            row = self._conn.execute("SELECT reason FROM quarantine WHERE path=?", (path,)).fetchone()
        return str(row[0]) if row else None

    def set_aside(self, image_id: str, path: str, reason: str) -> None:
        """An image whose spool file is gone or damaged, or whose pixels do not decode: it leaves
        the images and its batch and is listed in quarantine with the reason, in one step."""
        guard, states = _SET_ASIDE
        with self._tx() as db:
            db.execute(f"DELETE FROM images WHERE image_id=? AND {guard}", (image_id, *states))
            db.execute("INSERT OR REPLACE INTO quarantine (path, reason, at) VALUES (?, ?, ?)",
                       (path, reason, time.time()))

    def overdue(self, *, older_than: float) -> list[str]:
        """Images submitted before ``older_than`` whose result never came."""
        with self._lock:
            rows = self._conn.execute("SELECT image_id FROM images WHERE state=? AND updated_at<?"
                                      " ORDER BY seen_at", (ImageState.SUBMITTED.value, older_than)).fetchall()
        return [r[0] for r in rows]

    def resubmit(self, image_ids: list[str]) -> None:
        """The one legal step back: a submitted image whose result never came waits for a new batch.

        Re-uploading is idempotent (same key, same bytes) and a late first result simply
        lands under the same deterministic key, so nothing is doubled. An image no longer
        submitted (its result came meanwhile) is left as it is.
        """
        guard, states = _RESUBMITTED
        with self._tx() as db:
            db.executemany(f"UPDATE images SET state=?, batch_id=NULL, updated_at=? WHERE image_id=? AND {guard}",
                           [(ImageState.VALIDATED.value, time.time(), i, *states) for i in image_ids])

    def prune(self, *, older_than: float) -> int:
        """Forget finished images and summarized batches older than ``older_than``."""
        guard, states = _PRUNED
        with self._tx() as db:
            images = db.execute(f"DELETE FROM images WHERE {guard} AND updated_at<?", (*states, older_than)).rowcount
            db.execute("DELETE FROM batches WHERE summarized_at<? AND NOT EXISTS"
                       " (SELECT 1 FROM images i WHERE i.batch_id=batches.batch_id)", (older_than,))
            db.execute("DELETE FROM quarantine WHERE at<?", (older_than,))
            db.execute("DELETE FROM shadow_images WHERE at<?", (older_than,))
        return int(images)

    # --- the outbox: messages a hand-off queued, until the broker acknowledges them ------------
    def outbox_messages(self, limit: int = 100) -> list[OutboxMessage]:
        """The oldest waiting messages, in sending order."""
        with self._lock:
            rows = self._conn.execute("SELECT seq, topic, body, retain, created_at FROM outbox"
                                      " ORDER BY seq LIMIT ?", (limit,)).fetchall()
        return [OutboxMessage(int(r[0]), r[1], bytes(r[2]), bool(r[3]), float(r[4])) for r in rows]

    def outbox_count(self) -> int:
        with self._lock:
            return int(self._conn.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])

    def outbox_delete(self, seq: int) -> None:
        """The broker acknowledged message ``seq``: it leaves the outbox."""
        with self._tx() as db:
            db.execute("DELETE FROM outbox WHERE seq=?", (seq,))

    # --- figures for the status topic and the status command ----------------------------------
    def pending_bytes(self) -> int:
        """Bytes of images kept on the gateway until their result is published."""
        with self._lock:
            row = self._conn.execute("SELECT COALESCE(SUM(size), 0) FROM images WHERE state<>?",
                                     (ImageState.ALERTED.value,)).fetchone()
        return int(row[0])

    def last_batch(self) -> dict[str, Any] | None:
        with self._lock:
            row = self._conn.execute("SELECT * FROM batches ORDER BY created_at DESC LIMIT 1").fetchone()
        return dict(row) if row else None

    def counts(self) -> dict[str, int]:
        with self._lock:
            rows = self._conn.execute("SELECT state, COUNT(*) FROM images GROUP BY state").fetchall()
            quarantined = self._conn.execute("SELECT COUNT(*) FROM quarantine").fetchone()[0]
        counts = {state.value: 0 for state in ImageState}
        counts.update({r[0]: int(r[1]) for r in rows})
        counts["quarantined"] = int(quarantined)
        return counts

    def judgements(self) -> dict[str, int]:
        """Images judged at the edge only, judged there and audited by the cloud, and overruled."""
        with self._lock:
            row = self._conn.execute(
                "SELECT COALESCE(SUM(route=?), 0), COALESCE(SUM(route=?), 0), COALESCE(SUM(corrected=1), 0)"
                " FROM images", (Route.EDGE.value, Route.AUDIT.value)).fetchone()
        return {"judged_at_edge": int(row[0]), "audited": int(row[1]), "corrected": int(row[2])}
