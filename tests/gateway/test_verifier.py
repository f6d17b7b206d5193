"""verifier.py: journaled images decoded on their own thread; real journal, real files, real Pillow."""
from __future__ import annotations

import io
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from PIL import Image

from batchsight.config import Config, config_from_dict
from batchsight.ingest import Ingestor
from batchsight.journal import ImageState, Journal
from batchsight.verifier import PixelVerifier
from tests.gateway.journal_support import row

AWS = {"source_bucket": "src", "final_bucket": "final", "queue_url": "http://127.0.0.1/q",
       "state_machine_arn": "arn:aws:states:us-east-1:123456789012:stateMachine:sm"}


def jpeg(seed: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (128, 96), (seed * 40 % 256, 90, 30)).save(buffer, "JPEG")
    return buffer.getvalue()


def scrambled(seed: int) -> bytes:
    """Complete and well-formed up to its scan header, whose component ids the frame never declared."""
    data = bytearray(jpeg(seed))
    scan = data.index(b"\xff\xda")
    data[scan + 4:scan + 8] = b"\x09\x09\x09\x09"
    return bytes(data)


@pytest.fixture
def config(tmp_path: Path) -> Config:
    config = config_from_dict({"drop_folder": str(tmp_path / "drop"), "work_folder": str(tmp_path / "work"),
                               "aws": AWS})
    config.drop_folder.mkdir()
    return config


@pytest.fixture
def journal(config: Config) -> Iterator[Journal]:
    journal = Journal(config.journal_path)
    yield journal
    journal.close()


def receive(config: Config, journal: Journal, files: dict[str, bytes]) -> list[str]:
    paths = []
    for name, data in files.items():
        (config.drop_folder / name).write_bytes(data)
        paths.append(config.drop_folder / name)
    outcomes = Ingestor(config, journal).ingest_many(paths)
    assert all(o.accepted for o in outcomes), outcomes
    return [o.image_id for o in outcomes if o.image_id]


def verify(config: Config, journal: Journal, image_ids: list[str]) -> None:
    """One pass, as the thread makes it, then the decoder's process is closed."""
    verifier = PixelVerifier(config, journal)
    try:
        verifier.verify(image_ids)
    finally:
        verifier.stop()


def test_images_that_decode_become_validated_and_others_go_to_quarantine(config: Config, journal: Journal) -> None:
    good, bad = receive(config, journal, {"good.jpg": jpeg(1), "bad.jpg": scrambled(2)})
    assert row(journal, good).state is ImageState.RECEIVED

    verify(config, journal, [good, bad])

    assert row(journal, good).state is ImageState.VALIDATED
    assert journal.get(bad) is None, "it left the images: nothing waits on it"
    [kept] = [p for p in config.quarantine_folder.iterdir() if not p.name.endswith(".reason.txt")]
    assert kept.name.endswith("-bad.jpg") and kept.read_bytes() == scrambled(2)
    reason = kept.with_name(kept.name + ".reason.txt").read_text()
    assert reason.startswith("image does not decode")
    assert journal.counts()["quarantined"] == 1 and journal.waiting() == (1, row(journal, good).seen_at)


def test_a_missing_spool_file_is_set_aside_with_its_reason(config: Config, journal: Journal) -> None:
    [image_id] = receive(config, journal, {"gone.jpg": jpeg(3)})
    Path(row(journal, image_id).path).unlink()
    verify(config, journal, [image_id])
    assert journal.get(image_id) is None
    reasons = journal._conn.execute("SELECT reason FROM quarantine").fetchall()
    spooled = config.work_folder / "spool" / f"{image_id}.jpg"
    assert [r[0] for r in reasons] == [f"spool file {spooled} of image {image_id} is gone"]


def test_images_past_received_are_left_alone(config: Config, journal: Journal) -> None:
    [image_id] = receive(config, journal, {"a.jpg": jpeg(4)})
    journal.advance([image_id], ImageState.VALIDATED)
    journal.advance([image_id], ImageState.UPLOADED)
    verify(config, journal, [image_id, "f" * 64])
    assert row(journal, image_id).state is ImageState.UPLOADED


def test_the_thread_takes_what_a_crash_left_and_what_ingest_hands_over(config: Config, journal: Journal) -> None:
    left = receive(config, journal, {"before-crash.jpg": jpeg(5)})  # received, never verified
    verifier = PixelVerifier(config, journal)
    verifier.start()
    try:
        new = receive(config, journal, {f"n{n}.jpg": jpeg(10 + n) for n in range(3)})
        verifier.submit(new)
        deadline = time.monotonic() + 10
        while journal.counts()["validated"] < 4 and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        verifier.stop()
    assert {row(journal, i).state for i in left + new} == {ImageState.VALIDATED}


def test_a_failure_to_record_is_retried_not_lost(config: Config, journal: Journal,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """As when the journal's disk is full: the thread logs, waits and tries the same images again."""
    import batchsight.verifier as verifier_module

    [image_id] = receive(config, journal, {"r.jpg": jpeg(6)})
    monkeypatch.setattr(verifier_module, "RETRY_SECONDS", 0.05)
    real_validated, calls = Journal.validated, []

    def validated(self: Journal, ids: list[str]) -> None:
        calls.append(ids)
        if len(calls) == 1:
            raise OSError(28, "database or disk is full")
        real_validated(self, ids)

    monkeypatch.setattr(Journal, "validated", validated)
    verifier = PixelVerifier(config, journal)
    verifier.start()
    try:
        deadline = time.monotonic() + 10
        while row(journal, image_id).state is not ImageState.VALIDATED and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        verifier.stop()
    assert row(journal, image_id).state is ImageState.VALIDATED and len(calls) == 2


def test_nothing_more_is_decoded_once_stopping(config: Config, journal: Journal) -> None:
    """A group of circuit-board images takes seconds to decode: a stop does not wait for all of it."""
    ids = receive(config, journal, {f"s{n}.jpg": jpeg(20 + n) for n in range(3)})
    verifier = PixelVerifier(config, journal)
    verifier.stop()
    verifier.verify(ids)
    assert {row(journal, i).state for i in ids} == {ImageState.RECEIVED}


def test_the_decoder_process_ends_when_idle_and_starts_again_for_new_images(
        config: Config, journal: Journal, monkeypatch: pytest.MonkeyPatch) -> None:
    import batchsight.verifier as verifier_module

    monkeypatch.setattr(verifier_module, "IDLE_SECONDS", 0.2)
    verifier = PixelVerifier(config, journal)
    verifier.start()
    try:
        first = receive(config, journal, {"first.jpg": jpeg(30)})
        verifier.submit(first)
        wait(lambda: row(journal, first[0]).state is ImageState.VALIDATED and verifier.decoder.process is None)
        second = receive(config, journal, {"second.jpg": jpeg(31)})
        verifier.submit(second)
        wait(lambda: row(journal, second[0]).state is ImageState.VALIDATED)
    finally:
        verifier.stop()
    assert verifier.decoder.process is None, "stop ends it too"


def wait(condition: Callable[[], bool], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_a_stop_does_not_wait_for_a_stalled_decode(config: Config, journal: Journal) -> None:
    """The decoder's child sleeps on the image (a stand-in for a decoder stuck on a hostile file)."""
    from batchsight.decoder import Decoder

    [image_id] = receive(config, journal, {"stall.jpg": jpeg(32)})
    stalling = Decoder(command=[sys.executable, "-c", "import sys, time\nfor line in sys.stdin: time.sleep(3600)"])
    verifier = PixelVerifier(config, journal, decoder=stalling)
    verifier.start()
    wait(lambda: stalling.process is not None)
    time.sleep(0.3)  # the request is in the child's hands
    started = time.monotonic()
    verifier.stop()
    assert time.monotonic() - started < 10, "killed after the grace period, not after the 60 s timeout"
    assert row(journal, image_id).state is ImageState.RECEIVED, "left for the next start, not quarantined"
    assert stalling.process is None
