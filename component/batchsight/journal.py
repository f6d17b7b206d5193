"""The journal: every image's state in SQLite (WAL), so a crash anywhere loses nothing.

An image moves through ``ImageState`` in order; each step is recorded in its own
transaction after the side effect it records, so a restart repeats at most the last step,
and every step is idempotent (same S3 key, same execution name, same result key).
"""
from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any


class ImageState(str, Enum):
    RECEIVED = "received"        # complete, hashed, durable in the spool; pixels not yet decoded
    VALIDATED = "validated"      # decoded too (verifier.py); waiting for a batch
    UPLOADED = "uploaded"        # object in the source bucket
    ENQUEUED = "enqueued"        # message in the queue
    SUBMITTED = "submitted"      # execution started for its batch
    RESULT_STORED = "result_stored"
    ALERTED = "alerted"          # final: result published on MQTT
# Rejected files never become images: they are listed in the quarantine table instead.


class Route(str, Enum):
    """Who judges an image (edge_judge.py). An image without a route waits for the local detector."""

    CLOUD = "cloud"   # the batch pipeline only
    EDGE = "edge"     # the local detector only: VALIDATED -> RESULT_STORED, never uploaded
    AUDIT = "audit"   # the local verdict is published at once, and the cloud checks it

_BATCHED_ROUTES = (Route.CLOUD.value, Route.AUDIT.value)


_ORDER = list(ImageState)

SCHEMA = """
CREATE TABLE IF NOT EXISTS images (
    image_id      TEXT PRIMARY KEY,
    file_name     TEXT NOT NULL,
    path          TEXT NOT NULL,
    ext           TEXT NOT NULL,
    size          INTEGER NOT NULL,
    width         INTEGER NOT NULL,
    height        INTEGER NOT NULL,
    captured_at   TEXT NOT NULL,
    seen_at       REAL NOT NULL,
    state         TEXT NOT NULL,
    batch_id      TEXT,
    is_anomalous  INTEGER,
    confidence    REAL,
    result_json   TEXT,
    updated_at    REAL NOT NULL,
    route         TEXT,
    local_json    TEXT,
    corrected     INTEGER
);
CREATE INDEX IF NOT EXISTS images_state ON images(state, seen_at);
CREATE INDEX IF NOT EXISTS images_route ON images(route, state);
CREATE INDEX IF NOT EXISTS images_batch ON images(batch_id);
CREATE TABLE IF NOT EXISTS batches (
    batch_id      TEXT PRIMARY KEY,
    created_at    REAL NOT NULL,
    image_count   INTEGER NOT NULL,
    execution_arn TEXT,
    summarized_at REAL
);
CREATE TABLE IF NOT EXISTS quarantine (
    path          TEXT PRIMARY KEY,
    reason        TEXT NOT NULL,
    at            REAL NOT NULL
);
"""


class IllegalTransition(RuntimeError):
    """A caller tried to move an image backwards or skip its result: a bug, never data."""


_RESULT = _ORDER.index(ImageState.RESULT_STORED)


def _check_transition(image_id: str, current: ImageState, to: ImageState) -> None:
    """Forward moves may skip the cloud steps but never the stored result: alerts rest on it."""
    here, there = _ORDER.index(current), _ORDER.index(to)
    if here > there:
        raise IllegalTransition(f"image {image_id} is {current.value}, cannot become {to.value}")
    if here < _RESULT < there:
        raise IllegalTransition(f"image {image_id} is {current.value}, cannot become {to.value} "
                                f"without {ImageState.RESULT_STORED.value}")


@dataclass(frozen=True)
class ImageRecord:
    image_id: str
    file_name: str
    path: str
    ext: str
    size: int
    width: int
    height: int
    captured_at: str
    seen_at: float
    state: ImageState
    batch_id: str | None
    is_anomalous: bool | None
    confidence: float | None
    result_json: str | None
    route: str | None = Route.CLOUD.value
    local_json: str | None = None   # audit images: the local verdict published before the cloud's
    corrected: bool | None = None   # audit images: the cloud's verdict differed from the local one

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> ImageRecord:
        values = dict(row)
        values.pop("updated_at")
        values["state"] = ImageState(values["state"])
        for flag in ("is_anomalous", "corrected"):
            if values[flag] is not None:
                values[flag] = bool(values[flag])
        return cls(**values)


class Journal:
    """Thread-safe access to the journal file; one connection, serialized by a lock."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._conn.row_factory = sqlite3.Row
        self._lock = threading.RLock()
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")
        self._add_missing_columns()
        self._conn.executescript(SCHEMA)

    def _add_missing_columns(self) -> None:
        """Journals written before the edge modes lack the route columns: add them (all cloud)."""
        columns = {r[1] for r in self._conn.execute("PRAGMA table_info(images)")}
        if columns and "route" not in columns:
            self._conn.execute(f"ALTER TABLE images ADD COLUMN route TEXT DEFAULT '{Route.CLOUD.value}'")
            self._conn.execute("ALTER TABLE images ADD COLUMN local_json TEXT")
            self._conn.execute("ALTER TABLE images ADD COLUMN corrected INTEGER")

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
                " captured_at, seen_at, state, updated_at, route) VALUES (:image_id, :file_name, :path,"
                " :ext, :size, :width, :height, :captured_at, :seen_at, :state, :updated_at, :route)",
                [{"route": Route.CLOUD.value, **record, **stamps} for record in records])
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
            rows = self._conn.execute(f"SELECT * FROM images WHERE image_id IN ({', '.join('?' * len(image_ids))})",  # noqa: S608 - placeholders only
                                      image_ids).fetchall()
        return [ImageRecord.from_row(r) for r in rows]

    def validated(self, image_ids: list[str]) -> None:
        """Received images whose pixels decoded may now be judged and batched, in one statement."""
        with self._tx() as db:
            db.executemany("UPDATE images SET state=?, updated_at=? WHERE image_id=? AND state=?",
                           [(ImageState.VALIDATED.value, time.time(), i, ImageState.RECEIVED.value)
                            for i in image_ids])

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
                                     (ImageState.VALIDATED.value, *_BATCHED_ROUTES)).fetchone()
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
        """Assign the oldest waiting images to a new batch, atomically."""
        with self._tx() as db:
            ids = [r[0] for r in db.execute(
                "SELECT image_id FROM images WHERE state=? AND batch_id IS NULL AND route IN (?, ?)"
                " ORDER BY seen_at LIMIT ?", (ImageState.VALIDATED.value, *_BATCHED_ROUTES, max_images))]
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
        """Move images forward to ``to``; repeating a step is a no-op, going back or skipping
        the result is a bug."""
        with self._tx() as db:
            for image_id in image_ids:
                row = db.execute("SELECT state FROM images WHERE image_id=?", (image_id,)).fetchone()
                if row is None:
                    raise IllegalTransition(f"unknown image {image_id}")
                _check_transition(image_id, ImageState(row[0]), to)
                assignments = ", ".join(f"{k}=:{k}" for k in ("state", "updated_at", *fields))
                db.execute(f"UPDATE images SET {assignments} WHERE image_id=:image_id",  # noqa: S608 - fixed names
                           {"state": to.value, "updated_at": time.time(), "image_id": image_id, **fields})

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

    def set_aside(self, image_id: str, path: str, reason: str) -> None:
        """An image whose spool file is gone or damaged, or whose pixels do not decode: it leaves
        the images and its batch and is listed in quarantine with the reason, in one step."""
        with self._tx() as db:
            db.execute("DELETE FROM images WHERE image_id=? AND state IN (?, ?)",
                       (image_id, ImageState.RECEIVED.value, ImageState.VALIDATED.value))
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
        lands under the same deterministic key, so nothing is doubled.
        """
        with self._tx() as db:
            for image_id in image_ids:
                db.execute("UPDATE images SET state=?, batch_id=NULL, updated_at=? WHERE image_id=? AND state=?",
                           (ImageState.VALIDATED.value, time.time(), image_id, ImageState.SUBMITTED.value))

    def prune(self, *, older_than: float) -> int:
        """Forget finished images and summarized batches older than ``older_than``."""
        with self._tx() as db:
            images = db.execute("DELETE FROM images WHERE state=? AND updated_at<?",
                                (ImageState.ALERTED.value, older_than)).rowcount
            db.execute("DELETE FROM batches WHERE summarized_at<? AND NOT EXISTS"
                       " (SELECT 1 FROM images i WHERE i.batch_id=batches.batch_id)", (older_than,))
            db.execute("DELETE FROM quarantine WHERE at<?", (older_than,))
        return int(images)

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
