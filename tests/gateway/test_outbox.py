"""The outbox on real SQLite files: order, delete only after the ack, durability, and the
exactly-once handoff of an image's messages together with its journal state (crashes included)."""
from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from batchsight.alerter import Alerter
from batchsight.config import Config, config_from_dict
from batchsight.journal import ImageState, Journal
from batchsight.publishers.base import Delivered, Delivery, Publisher, PublishError
from batchsight.publishers.outbox import Outbox
from tests.gateway.journal_support import row

AWS = {"source_bucket": "src", "final_bucket": "final", "queue_url": "https://q", "state_machine_arn": "arn:sm"}


class PendingDelivery(Delivery):
    """A publish whose PUBACK the test decides: ack(), fail(), or leave pending."""

    def __init__(self) -> None:
        self.state = "pending"

    def ack(self) -> None:
        self.state = "acked"

    def fail(self) -> None:
        self.state = "failed"

    def wait(self, timeout: float) -> bool:
        if self.state == "failed":
            raise PublishError("connection lost before PUBACK")
        return self.state == "acked"


class FakeBroker(Publisher):
    """Records every send; acknowledges at once unless told to hold acknowledgements."""

    def __init__(self, *, hold: bool = False) -> None:
        self.up = True
        self.hold = hold
        self.sent: list[tuple[str, bytes, bool]] = []
        self.deliveries: list[PendingDelivery] = []
        self.refuse_next = 0

    @property
    def ready(self) -> bool:
        return self.up

    def send(self, topic: str, body: bytes, *, retain: bool = False) -> Delivery:
        if self.refuse_next:
            self.refuse_next -= 1
            raise PublishError("refused")
        self.sent.append((topic, body, retain))
        if not self.hold:
            return Delivered()
        delivery = PendingDelivery()
        self.deliveries.append(delivery)
        return delivery

    def _publish(self, topic: str, body: bytes, *, retain: bool) -> None:
        self.send(topic, body, retain=retain)

    def connect(self) -> None:
        pass

    def close(self) -> None:
        pass

    def bodies(self) -> list[bytes]:
        return [body for _, body, _ in self.sent]


def fill(outbox: Outbox, count: int, start: int = 0) -> list[bytes]:
    bodies = [json.dumps({"n": n}).encode() for n in range(start, start + count)]
    for body in bodies:
        outbox.enqueue("factory/p/l/d/inspection/result", body)
    return bodies


# --- the outbox alone ----------------------------------------------------------------------
def test_messages_leave_in_seq_order_and_each_row_goes_only_after_its_ack(journal: Journal) -> None:
    outbox, broker = Outbox(journal), FakeBroker(hold=True)
    bodies = fill(outbox, 3)
    assert outbox.drain(broker, budget=0.05) == 0, "sent, not acknowledged yet"
    assert broker.bodies() == bodies[:1], "one message in flight at a time (strict order)"
    assert outbox.pending() == 3 and outbox.in_flight == outbox.messages()[0].seq
    assert outbox.drain(broker, budget=0.05) == 0
    assert broker.bodies() == bodies[:1], "a pending message is waited for, never sent twice"
    broker.deliveries[0].ack()
    assert outbox.drain(broker, budget=0.05) == 1
    assert outbox.pending() == 2 and broker.bodies() == bodies[:2]
    broker.hold = False
    broker.deliveries[1].ack()
    assert outbox.drain(broker) == 2
    assert outbox.pending() == 0 and broker.bodies() == bodies


def test_send_next_puts_the_head_on_the_wire_and_the_drain_waits_for_its_ack(journal: Journal) -> None:
    """The judge's thread sends the message it just queued; the sending thread takes it from there."""
    outbox, broker = Outbox(journal), FakeBroker(hold=True)
    bodies = fill(outbox, 2)
    outbox.send_next(broker)
    assert broker.bodies() == bodies[:1] and outbox.in_flight == outbox.messages()[0].seq
    outbox.send_next(broker)
    assert broker.bodies() == bodies[:1], "one message in flight at a time, never sent twice"
    broker.deliveries[0].ack()
    assert outbox.drain(broker, budget=0.05) == 1 and broker.bodies() == bodies
    broker.deliveries[1].ack()
    assert outbox.drain(broker, budget=0.05) == 1 and outbox.pending() == 0
    broker.up = False
    fill(outbox, 1)
    outbox.send_next(broker)
    assert outbox.in_flight is None and len(broker.sent) == 2, "broker down: it waits in its row"
    broker.up = True
    with outbox._sending:  # a drain sending on another thread: it takes the message itself
        outbox.send_next(broker)
    assert outbox.in_flight is None and len(broker.sent) == 2


def test_broker_down_nothing_is_sent_or_lost_and_the_backlog_leaves_in_order(journal: Journal) -> None:
    outbox, broker = Outbox(journal), FakeBroker()
    broker.up = False
    bodies = fill(outbox, 20)
    for _ in range(5):
        assert outbox.drain(broker) == 0
    assert broker.sent == [] and outbox.pending() == 20
    broker.up = True
    assert outbox.drain(broker) == 20
    assert broker.bodies() == bodies and outbox.pending() == 0


def test_a_message_in_flight_across_a_disconnection_is_not_sent_again(journal: Journal) -> None:
    """The MQTT client resends it after reconnecting; the outbox waits for that same PUBACK."""
    outbox, broker = Outbox(journal), FakeBroker(hold=True)
    bodies = fill(outbox, 2)
    outbox.drain(broker, budget=0.01)
    broker.up = False
    started = time.monotonic()
    assert outbox.drain(broker, budget=5.0) == 0
    assert time.monotonic() - started < 1.0, "while disconnected the drain only looks"
    broker.up, broker.hold = True, False
    broker.deliveries[0].ack()  # the client's resend was acknowledged after the reconnection
    assert outbox.drain(broker) == 2
    assert broker.bodies() == bodies, "each message sent once"


def test_a_failed_message_is_retried_from_its_row_with_backoff_and_order_kept(journal: Journal) -> None:
    outbox, broker = Outbox(journal, retry_base=0.2, retry_cap=0.2), FakeBroker(hold=True)
    bodies = fill(outbox, 3)
    outbox.drain(broker, budget=0.01)
    broker.deliveries[0].fail()
    assert outbox.drain(broker) == 0 and outbox.pending() == 3
    assert outbox.drain(broker) == 0 and len(broker.sent) == 1, "backing off: nothing sent"
    time.sleep(0.25)
    broker.hold = False
    assert outbox.drain(broker) == 3
    assert broker.bodies() == [bodies[0], *bodies], "the failed one again first, then the rest"
    broker.refuse_next = 1  # a client that refuses to take a message: same rule
    fill(outbox, 1, start=3)
    assert outbox.drain(broker) == 0 and outbox.pending() == 1


def test_the_outbox_survives_reopening_and_never_reuses_a_seq(open_journal: Callable[[], Journal]) -> None:
    journal = open_journal()
    outbox = Outbox(journal)
    fill(outbox, 4)
    outbox.drain(FakeBroker(), budget=1.0)
    assert outbox.pending() == 0
    fill(outbox, 3, start=4)
    last_seq = outbox.messages()[-1].seq
    journal.close()

    reopened = Outbox(open_journal())
    waiting = reopened.messages()
    assert [m.body for m in waiting] == [json.dumps({"n": n}).encode() for n in (4, 5, 6)]
    assert reopened.enqueue("t", b"{}") > last_seq, "AUTOINCREMENT: a seq is never reused"
    broker = FakeBroker()
    assert reopened.drain(broker) == 4
    assert broker.bodies()[:3] == [m.body for m in waiting]


def test_the_outbox_table_is_the_journals(journal: Journal) -> None:
    """The journal makes the table and does every write to it (a hand-off); the outbox sends."""
    assert journal.outbox_count() == 0, "there before any Outbox is made"
    with journal.handoff() as tx:
        seq = tx.put("a/b", b"{}")
    assert [(m.seq, m.topic, m.body) for m in Outbox(journal).messages()] == [(seq, "a/b", b"{}")]


def test_retained_flag_and_bytes_are_kept_exactly(journal: Journal) -> None:
    outbox, broker = Outbox(journal), FakeBroker()
    body = "{\"file_name\":\"Teil_ä.jpg\"}".encode()
    outbox.enqueue("a/b", body, retain=True)
    outbox.drain(broker)
    assert broker.sent == [("a/b", body, True)]


# --- the handoff with the journal ------------------------------------------------------------
def config_for(tmp_path: Path, **overrides: Any) -> Config:
    return config_from_dict({"site": "p", "line": "l", "device": "d", "aws": AWS,
                             "drop_folder": str(tmp_path / "drop"), "work_folder": str(tmp_path / "work"),
                             **overrides})


def stored_image(journal: Journal, config: Config, n: int, *, anomalous: bool, batch_id: str = "b1") -> str:
    """An image whose result is stored, with its file in the spool."""
    data = f"image {n}".encode()
    image_id = hashlib.sha256(data).hexdigest()
    spool = config.work_folder / "spool"
    spool.mkdir(parents=True, exist_ok=True)
    path = spool / f"{image_id}.jpg"
    path.write_bytes(data)
    assert journal.add({"image_id": image_id, "file_name": f"cam-{n}.jpg", "path": str(path), "ext": "jpg",
                        "size": len(data), "width": 640, "height": 480,
                        "captured_at": "2026-11-23T10:00:00.000Z"})
    time.sleep(0.002)  # strictly increasing seen_at
    journal.advance([image_id], ImageState.SUBMITTED, batch_id=batch_id)
    document = {"v": 1, "image_id": image_id, "processed_at": "2026-11-23T10:00:05.000Z",
                "model": {"name": "detector.npz"},
                "result": {"Source": {"Type": "direct"}, "IsAnomalous": anomalous, "Confidence": 0.9}}
    journal.advance([image_id], ImageState.RESULT_STORED, is_anomalous=int(anomalous), confidence=0.9,
                    result_json=json.dumps(document))
    return image_id


def batch(journal: Journal, batch_id: str, count: int) -> None:
    with journal._tx() as db:  # noqa: SLF001 - a batch row as cut_batch would have made it
        db.execute("INSERT INTO batches (batch_id, created_at, image_count) VALUES (?, ?, ?)",
                   (batch_id, time.time(), count))


def kinds(outbox: Outbox) -> list[tuple[str, str]]:
    return [(m.topic.rsplit("/", 1)[-1], json.loads(m.body).get("image_id") or json.loads(m.body)["batch_id"])
            for m in outbox.messages(1000)]


def test_handoff_queues_each_image_once_marks_it_alerted_and_retires_its_file(tmp_path: Path,
                                                                           journal: Journal) -> None:
    config = config_for(tmp_path)
    batch(journal, "b1", 3)
    ids = [stored_image(journal, config, n, anomalous=(n == 1)) for n in range(3)]
    broker = FakeBroker()
    broker.up = False  # the broker is down: the handoff does not depend on it
    alerter = Alerter(config, journal, broker)
    assert alerter.publish_pending() == 3
    assert alerter.publish_pending() == 0, "a second pass hands nothing off again"
    assert [row(journal, i).state for i in ids] == [ImageState.ALERTED] * 3
    assert not list((config.work_folder / "spool").iterdir()), "files retired after the handoff"
    assert kinds(alerter.outbox) == [("result", ids[0]), ("result", ids[1]), ("alert", ids[1]),
                                     ("result", ids[2]), ("batch", "b1")], "a summary follows its images"
    assert broker.sent == []
    broker.up = True
    alerter.publish_pending()
    assert [json.loads(b).get("image_id") for b in broker.bodies()] == [ids[0], ids[1], ids[1], ids[2], None]
    assert alerter.outbox.pending() == 0
    alerter.publish_pending()
    assert len(broker.sent) == 5, "nothing is published twice"


def test_a_failing_handoff_rolls_back_both_the_messages_and_the_states(tmp_path: Path, journal: Journal) -> None:
    config = config_for(tmp_path)
    image_id = stored_image(journal, config, 1, anomalous=True)
    outbox = Outbox(journal)
    with pytest.raises(RuntimeError), outbox.handoff() as tx:
        assert tx.claim_image(image_id)
        tx.put("t/result", b"{}")
        raise RuntimeError("disk full")
    assert outbox.pending() == 0 and row(journal, image_id).state is ImageState.RESULT_STORED
    assert Alerter(config, journal, FakeBroker(hold=True), outbox=outbox).hand_off() == 1
    assert outbox.pending() == 2


def _crash_in_handoff(work: str, image_id: str, commit: bool) -> None:
    """Child process: hand off one image and die (os._exit, no cleanup) before or after COMMIT."""
    journal = Journal(Path(work) / "journal.sqlite3")
    outbox = Outbox(journal)
    if commit:
        with outbox.handoff() as tx:
            tx.claim_image(image_id)
            tx.put("t/result", image_id.encode())
        os._exit(0)
    with outbox.handoff() as tx:
        tx.claim_image(image_id)
        tx.put("t/result", image_id.encode())
        os._exit(0)  # inside the transaction: nothing committed


@pytest.mark.parametrize("commit", [False, True], ids=["killed-before-commit", "killed-after-commit"])
def test_a_process_killed_around_the_handoff_leaves_exactly_one_copy(tmp_path: Path,
                                                                    open_journal: Callable[[], Journal],
                                                                    commit: bool) -> None:
    config = config_for(tmp_path)
    journal = open_journal()
    image_id = stored_image(journal, config, 1, anomalous=False)
    journal.close()
    child = multiprocessing.get_context("spawn").Process(target=_crash_in_handoff,
                                                         args=(str(config.work_folder), image_id, commit))
    child.start()
    child.join(30)
    assert child.exitcode == 0

    journal = open_journal()
    alerter = Alerter(config, journal, FakeBroker())
    state = row(journal, image_id).state
    assert state is (ImageState.ALERTED if commit else ImageState.RESULT_STORED)
    assert alerter.outbox.pending() == (1 if commit else 0), "both or neither"
    alerter.publish_pending()  # the restarted program carries on
    assert row(journal, image_id).state is ImageState.ALERTED
    assert alerter.outbox.pending() == 0
    assert len(alerter.publisher.sent) == 1, "one message for the image, whatever the crash point"  # type: ignore[attr-defined]
    assert not (config.work_folder / "spool" / f"{image_id}.jpg").exists(), "a file a crash left is retired"
