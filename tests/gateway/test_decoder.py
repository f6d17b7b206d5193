"""decoder.py: the decoding child process, its protocol, and what happens when it dies or stalls.

Real child processes throughout. A decoder that crashes or stalls on one image cannot be had
from Pillow on demand, so those tests run a small script in the child's place that answers
with the real ``_answer`` and dies (a real signal) or sleeps on the file named for it.
"""
from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from batchsight.config import IngestSettings
from batchsight.decoder import WINDOW, Decoder, Verdict
from tests.gateway.test_verifier import jpeg, scrambled

LIMITS = IngestSettings()
MISBEHAVING = """
import json, os, signal, sys, time
from batchsight.decoder import _answer
for line in sys.stdin:
    request = json.loads(line)
    name = os.path.basename(request["path"])
    if name.startswith("crash") and not os.path.exists(sys.argv[1]):
        if name.startswith("crash-once"):
            open(sys.argv[1], "w").close()
        os.kill(os.getpid(), signal.SIGSEGV)
    if name.startswith("stall"):
        time.sleep(3600)
    if name.startswith("realtime"):
        os.kill(os.getpid(), signal.SIGRTMIN + 3)  # ends the process; no name in signal.Signals
    print(json.dumps(_answer(request)), flush=True)
"""

ALL_AT_ONCE = """
import json, sys
from batchsight.decoder import _answer
requests = [json.loads(sys.stdin.readline()) for _ in range(3)]
sys.stdout.write("".join(json.dumps(_answer(request)) + "\\n" for request in requests))
sys.stdout.flush()
sys.stdin.read()
"""


def files(folder: Path, contents: dict[str, bytes]) -> list[tuple[str, str]]:
    folder.mkdir(exist_ok=True)
    for name, data in contents.items():
        (folder / name).write_bytes(data)
    return [(str(folder / name), "jpg") for name in contents]


def misbehaving(tmp_path: Path, **kwargs: float) -> Decoder:
    return Decoder(command=[sys.executable, "-c", MISBEHAVING, str(tmp_path / "crashed-once")], **kwargs)


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/status").read_text().split("State:")[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_verdicts_come_in_order_for_more_files_than_the_window(tmp_path: Path) -> None:
    contents = {f"{n:02d}.jpg": scrambled(n) if n % 5 == 3 else jpeg(n) for n in range(3 * WINDOW)}
    paths = files(tmp_path / "images", contents)
    paths.insert(4, (str(tmp_path / "images" / "gone.jpg"), "jpg"))
    decoder = Decoder()
    try:
        verdicts = list(decoder.decode_many(paths, LIMITS))
    finally:
        decoder.close()
    assert verdicts[4] == Verdict(missing=True)
    del verdicts[4]
    assert [v.reason is None for v in verdicts] == [n % 5 != 3 for n in range(3 * WINDOW)]
    assert all(v.reason.startswith("image does not decode") for v in verdicts if v.reason)


def test_answers_that_arrive_in_one_read_are_each_taken_at_once(tmp_path: Path) -> None:
    """Three answers in one write: none may wait, unseen, in a buffer until the timeout."""
    paths = files(tmp_path / "images", {"a.jpg": jpeg(1), "b.jpg": scrambled(2), "c.jpg": jpeg(3)})
    decoder = Decoder(command=[sys.executable, "-c", ALL_AT_ONCE], timeout=5)
    started = time.monotonic()
    try:
        verdicts = list(decoder.decode_many(paths, LIMITS))
    finally:
        decoder.close()
    assert [v.reason is None for v in verdicts] == [True, False, True]
    assert time.monotonic() - started < 4, "no answer waited for the timeout"


def test_a_file_that_cannot_be_read_now_raises_and_the_rest_are_decoded_next_time(tmp_path: Path) -> None:
    unreadable = tmp_path / "images" / "a-folder.jpg"
    unreadable.mkdir(parents=True)
    paths = files(tmp_path / "images", {"a.jpg": jpeg(1), "b.jpg": jpeg(2)})
    decoder = Decoder()
    try:
        with pytest.raises(OSError, match="cannot read .*a-folder.jpg to decode it"):
            list(decoder.decode_many([paths[0], (str(unreadable), "jpg"), paths[1]], LIMITS))
        assert list(decoder.decode_many(paths[1:], LIMITS)) == [Verdict()], "no answer of the last call is left over"
    finally:
        decoder.close()


def test_an_image_that_kills_the_decoder_twice_is_refused_and_the_others_are_decoded(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    paths = files(tmp_path / "images", {"a.jpg": jpeg(1), "crash.jpg": jpeg(2), "b.jpg": jpeg(3)})
    decoder = misbehaving(tmp_path)
    try:
        with caplog.at_level(logging.WARNING, logger="batchsight.decoder"):
            verdicts = list(decoder.decode_many(paths, LIMITS))
    finally:
        decoder.close()
    assert verdicts == [Verdict(), Verdict(reason="the image decoder failed on it 2 times, last: killed by SIGSEGV"),
                        Verdict()]
    failures = [r for r in caplog.records if r.message.startswith("image decoder failed")]
    assert [(Path(vars(r)["path"]).name, vars(r)["attempt"]) for r in failures] == [("crash.jpg", 1), ("crash.jpg", 2)]


def test_a_death_by_a_signal_without_a_name_is_reported_by_its_number(tmp_path: Path) -> None:
    paths = files(tmp_path / "images", {"realtime.jpg": jpeg(1)})
    decoder = misbehaving(tmp_path)
    try:
        verdicts = list(decoder.decode_many(paths, LIMITS))
    finally:
        decoder.close()
    number = signal.SIGRTMIN + 3
    assert verdicts == [Verdict(reason=f"the image decoder failed on it 2 times, last: killed by signal {number}")]


def test_a_caller_that_stops_after_a_refused_image_leaves_the_decoder_usable(tmp_path: Path) -> None:
    """As the verifier does when asked to stop: the generator is closed with requests in flight."""
    paths = files(tmp_path / "images", {"crash.jpg": jpeg(1), "a.jpg": jpeg(2), "b.jpg": scrambled(3)})
    decoder = misbehaving(tmp_path)
    try:
        verdicts = decoder.decode_many(paths, LIMITS)
        assert next(verdicts).reason == "the image decoder failed on it 2 times, last: killed by SIGSEGV"
        verdicts.close()
        assert [v.reason is None for v in decoder.decode_many(paths[1:], LIMITS)] == [True, False]
    finally:
        decoder.close()


def test_one_crash_is_not_held_against_the_image(tmp_path: Path) -> None:
    """A kill from outside (the OOM killer, an operator) looks the same as a crash once."""
    paths = files(tmp_path / "images", {"crash-once.jpg": jpeg(1), "b.jpg": jpeg(2)})
    decoder = misbehaving(tmp_path)
    try:
        assert list(decoder.decode_many(paths, LIMITS)) == [Verdict(), Verdict()]
    finally:
        decoder.close()


def test_a_stalled_decoder_is_killed_and_the_image_refused_after_two_timeouts(tmp_path: Path) -> None:
    paths = files(tmp_path / "images", {"stall.jpg": jpeg(1), "b.jpg": jpeg(2)})
    decoder = misbehaving(tmp_path, timeout=2.0)  # room for a fresh child to start on a loaded machine
    started = time.monotonic()
    try:
        stalled = next(decoder.decode_many(paths[:1], LIMITS))
        left_behind = decoder.process
        rest = list(decoder.decode_many(paths[1:], LIMITS))
    finally:
        decoder.close()
    assert stalled == Verdict(reason="the image decoder failed on it 2 times, last: no answer within 2 s")
    assert rest == [Verdict()] and time.monotonic() - started < 10
    assert left_behind is None, "the stalled child was killed and reaped"


def test_a_child_killed_while_idle_is_replaced_without_counting_against_an_image(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    paths = files(tmp_path / "images", {"a.jpg": jpeg(1), "b.jpg": jpeg(2)})
    decoder = Decoder()
    try:
        assert list(decoder.decode_many(paths[:1], LIMITS)) == [Verdict()]
        assert decoder.process is not None
        first = decoder.process.pid
        os.kill(first, signal.SIGKILL)
        decoder.process.wait()
        with caplog.at_level(logging.WARNING, logger="batchsight.decoder"):
            assert list(decoder.decode_many(paths[1:], LIMITS)) == [Verdict()]
        assert decoder.process.pid != first and not caplog.records
    finally:
        decoder.close()


def test_the_child_ignores_a_stop_signal_to_the_group_and_ends_at_eof(tmp_path: Path) -> None:
    paths = files(tmp_path / "images", {"a.jpg": jpeg(1), "b.jpg": jpeg(2)})
    decoder = Decoder()
    try:
        list(decoder.decode_many(paths[:1], LIMITS))
        assert decoder.process is not None
        child = decoder.process
        child.send_signal(signal.SIGTERM)
        assert list(decoder.decode_many(paths[1:], LIMITS)) == [Verdict()] and decoder.process is child
    finally:
        decoder.close()
    assert child.returncode == 0, "closed at EOF, not killed"


def test_the_child_ends_when_the_component_is_killed(tmp_path: Path) -> None:
    [(path, _)] = files(tmp_path / "images", {"a.jpg": jpeg(1)})
    component = ("import sys, time\nfrom batchsight.config import IngestSettings\n"
                 "from batchsight.decoder import Decoder\nd = Decoder()\n"
                 f"list(d.decode_many([({path!r}, 'jpg')], IngestSettings()))\nprint(d.process.pid, flush=True)\n"
                 "time.sleep(3600)")
    parent = subprocess.Popen([sys.executable, "-c", component], stdout=subprocess.PIPE, text=True)
    try:
        child = int(parent.stdout.readline())  # type: ignore[union-attr]
        assert alive(child)
    finally:
        parent.kill()
        parent.wait()
    deadline = time.monotonic() + 10
    while alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(child), "EOF on its stdin ends it: no orphan after a kill -9"
