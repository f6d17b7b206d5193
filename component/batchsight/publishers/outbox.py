"""The outbox: MQTT messages waiting for the broker, on disk, in the journal file.

Why in the journal file: an image's messages are queued and the image is marked ALERTED in
ONE SQLite transaction (``Outbox.handoff``, the journal's ``Journal.handoff``: the table and
every write to it are the journal's), so a crash can leave neither an image without its
messages nor a second copy of them. The sender (``Outbox.drain``) then publishes the
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
import threading
import time
from contextlib import AbstractContextManager

from batchsight.journal import Handoff, Journal, OutboxMessage
from batchsight.publishers.base import Delivery, Publisher, PublishError

__all__ = ["Handoff", "Outbox", "OutboxMessage"]
log = logging.getLogger(__name__)


class Outbox:
    """The ``outbox`` table of the journal file, and the in-order, ack-then-delete sender."""

    def __init__(self, journal: Journal, *, retry_base: float = 1.0, retry_cap: float = 60.0) -> None:
        self._journal = journal  # the table is the journal's, and so is every write to it
        self.retry_base, self.retry_cap = retry_base, retry_cap
        self._inflight: tuple[int, Delivery] | None = None
        self._failures = 0
        self._next_try = 0.0
        self._sending = threading.Lock()  # one sender at a time keeps the order and the in-flight message

    # --- storing ----------------------------------------------------------------------------
    def handoff(self) -> AbstractContextManager[Handoff]:
        """One journal transaction (``Journal.handoff``): everything queued and claimed inside
        commits together."""
        return self._journal.handoff()

    def enqueue(self, topic: str, body: bytes, *, retain: bool = False) -> int:
        with self.handoff() as tx:
            return tx.put(topic, body, retain=retain)

    def pending(self) -> int:
        return self._journal.outbox_count()

    def messages(self, limit: int = 100) -> list[OutboxMessage]:
        """The oldest waiting messages, in sending order."""
        return self._journal.outbox_messages(limit)

    def delete(self, seq: int) -> None:
        self._journal.outbox_delete(seq)

    # --- sending ----------------------------------------------------------------------------
    @property
    def in_flight(self) -> int | None:
        """The seq of the message sent and not yet acknowledged, if any."""
        return self._inflight[0] if self._inflight else None

    def drain(self, publisher: Publisher, *, budget: float = 0.5) -> int:
        """Send waiting messages in order for up to ``budget`` seconds; returns how many were
        acknowledged (and deleted). Never raises for a broker problem: it stops and retries
        at a later call. Callers on other threads wait for the one sending."""
        with self._sending:
            return self._drain(publisher, budget)

    def send_next(self, publisher: Publisher) -> None:
        """Put the oldest waiting message on the wire now, unless one is in flight or a sender is
        busy (it takes the message itself); ``drain`` waits for its PUBACK. For the thread that
        has just queued a message: it goes out without a hand-over to the sending thread."""
        if not self._sending.acquire(blocking=False):
            return
        try:
            if self._inflight is None and time.monotonic() >= self._next_try and publisher.ready:
                self._send_head(publisher)
        finally:
            self._sending.release()

    def _send_head(self, publisher: Publisher) -> bool:
        """Send the oldest waiting message; False when there is none or the client refused it."""
        head = self.messages(1)
        if not head:
            return False
        message = head[0]
        try:
            self._inflight = (message.seq, publisher.send(message.topic, message.body, retain=message.retain))
        except PublishError as exc:
            self._failed(exc, message.seq)
            return False
        return True

    def _drain(self, publisher: Publisher, budget: float) -> int:
        started = time.monotonic()
        if started < self._next_try:
            return 0
        acked = 0
        while True:
            remaining = budget - (time.monotonic() - started)
            if self._inflight is None and (remaining <= 0 or not publisher.ready or not self._send_head(publisher)):
                break
            assert self._inflight is not None  # in flight before, or sent just now
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
