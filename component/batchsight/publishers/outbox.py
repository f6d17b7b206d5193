"""The outbox: MQTT messages waiting for the broker, on disk, in the journal file.

Why in the journal file: an image's messages are queued and the image is marked ALERTED in
ONE SQLite transaction (``Outbox.handoff``), so a crash can leave neither an image without
its messages nor a second copy of them. The sender (``Outbox.drain``) then publishes the
rows in ``seq`` order, one at a time, and deletes a row only after the broker's PUBACK:

- broker down (publisher not ``ready``): nothing is sent, the rows wait; when the client has
  reconnected, the backlog goes out in order, each message once;
- a publish in flight when the connection drops stays in flight: the MQTT client resends it
  after reconnecting (persistent session) and the drain keeps waiting for that same
  acknowledgement rather than publishing the row a second time;
- a publish that definitely failed (refused by the broker, acknowledgement timeout) is
  retried from the same row with exponential backoff; later rows wait behind it (order).

QoS 1 is at-least-once by nature: a crash after the PUBACK but before the row's delete (a
few milliseconds) re-sends that one message after the restart, and a connection cut after
the broker forwarded a message but before its PUBACK came back can make the client resend
it. Payloads carry ``image_id`` (results, alerts) or ``batch_id`` (summaries) so consumers
can drop such a duplicate. Retained status messages do not go through here: they are
refreshed every few seconds, and an old one must not be delivered after a newer one.
"""
from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from batchsight.journal import ImageState, Journal, Route
from batchsight.publishers.base import Delivery, Publisher, PublishError

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    topic      TEXT NOT NULL,
    body       BLOB NOT NULL,
    retain     INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL
);
"""


@dataclass(frozen=True)
class OutboxMessage:
    seq: int
    topic: str
    body: bytes
    retain: bool
    created_at: float


class Handoff:
    """Inside one journal transaction: claim images or batches and queue their messages."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def put(self, topic: str, body: bytes, *, retain: bool = False) -> int:
        cursor = self._db.execute("INSERT INTO outbox (topic, body, retain, created_at) VALUES (?, ?, ?, ?)",
                                  (topic, body, int(retain), time.time()))
        return int(cursor.lastrowid or 0)

    def claim_image(self, image_id: str, *, corrected: bool | None = None) -> bool:
        """result_stored -> alerted; False when the image is not (or no longer) result_stored.

        ``corrected`` records, for an audited image, whether the cloud overruled the edge.
        """
        cursor = self._db.execute("UPDATE images SET state=?, updated_at=?, corrected=? WHERE image_id=?"
                                  " AND state=?", (ImageState.ALERTED.value, time.time(),
                                                   None if corrected is None else int(corrected),
                                                   image_id, ImageState.RESULT_STORED.value))
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


class Outbox:
    """The ``outbox`` table of the journal file, and the in-order, ack-then-delete sender."""

    def __init__(self, journal: Journal, *, retry_base: float = 1.0, retry_cap: float = 60.0) -> None:
        # The handoff must share the journal's transaction, so the outbox uses the journal's
        # own connection and lock (one SQLite connection per file in this program).
        self._journal = journal
        with journal._lock:  # noqa: SLF001 - same file, same connection, by design
            journal._conn.executescript(SCHEMA)  # noqa: SLF001
        self.retry_base, self.retry_cap = retry_base, retry_cap
        self._inflight: tuple[int, Delivery] | None = None
        self._failures = 0
        self._next_try = 0.0

    # --- storing ----------------------------------------------------------------------------
    @contextmanager
    def handoff(self) -> Iterator[Handoff]:
        """One journal transaction: everything queued and claimed inside commits together."""
        with self._journal._tx() as db:  # noqa: SLF001
            yield Handoff(db)

    def enqueue(self, topic: str, body: bytes, *, retain: bool = False) -> int:
        with self.handoff() as tx:
            return tx.put(topic, body, retain=retain)

    def pending(self) -> int:
        with self._journal._lock:  # noqa: SLF001
            return int(self._journal._conn.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])  # noqa: SLF001

    def messages(self, limit: int = 100) -> list[OutboxMessage]:
        """The oldest waiting messages, in sending order."""
        with self._journal._lock:  # noqa: SLF001
            rows = self._journal._conn.execute(  # noqa: SLF001
                "SELECT seq, topic, body, retain, created_at FROM outbox ORDER BY seq LIMIT ?", (limit,)).fetchall()
        return [OutboxMessage(int(r[0]), r[1], bytes(r[2]), bool(r[3]), float(r[4])) for r in rows]

    def delete(self, seq: int) -> None:
        with self._journal._tx() as db:  # noqa: SLF001
            db.execute("DELETE FROM outbox WHERE seq=?", (seq,))

    # --- sending ----------------------------------------------------------------------------
    @property
    def in_flight(self) -> int | None:
        """The seq of the message sent and not yet acknowledged, if any."""
        return self._inflight[0] if self._inflight else None

    def drain(self, publisher: Publisher, *, budget: float = 0.5) -> int:
        """Send waiting messages in order for up to ``budget`` seconds; returns how many were
        acknowledged (and deleted). Never raises for a broker problem: it stops and retries
        at a later call."""
        started = time.monotonic()
        if started < self._next_try:
            return 0
        acked = 0
        while True:
            remaining = budget - (time.monotonic() - started)
            if self._inflight is None:
                if remaining <= 0 or not publisher.ready:
                    break
                head = self.messages(1)
                if not head:
                    break
                message = head[0]
                try:
                    self._inflight = (message.seq, publisher.send(message.topic, message.body,
                                                                  retain=message.retain))
                except PublishError as exc:
                    self._failed(exc, message.seq)
                    break
            seq, delivery = self._inflight
            try:
                # while disconnected only look: the client resends it after reconnecting
                done = delivery.wait(remaining if publisher.ready else 0.0)
            except PublishError as exc:
                self._inflight = None
                self._failed(exc, seq)
                break
            if not done:
                break  # still on its way; the next drain waits for the same acknowledgement
            self.delete(seq)
            self._inflight = None
            acked += 1
            if self._failures:
                log.info("outbox sending again", extra={"after_failures": self._failures})
            self._failures, self._next_try = 0, 0.0
        return acked

    def _failed(self, exc: PublishError, seq: int) -> None:
        self._failures += 1
        delay = min(self.retry_cap, self.retry_base * 2 ** (self._failures - 1))
        self._next_try = time.monotonic() + delay
        log.warning("outbox message not acknowledged; retrying in order",
                    extra={"seq": seq, "error": str(exc), "retry_in_s": delay, "waiting": self.pending()})
