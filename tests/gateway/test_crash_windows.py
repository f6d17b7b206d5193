"""Crash windows (issue #23), on the real classes in a child process killed with SIGKILL at one call.

``die_at`` wraps one function so that the (forked) child kills itself just before or after it:
no ``finally`` and no ``except`` of ours runs, as after a real kill -9 or power loss. The parent
then starts over on the same folders and journal, as the component does at its next start.

Here: a drop folder on another file system, killed after the copy came into staging and before
the camera's file was unlinked (``durable.move_across``), and the decoder's child left with a
request in hand. The quarantine's windows are in test_crash_windows_quarantine.py; the real edge
process killed at the same points in tests/reliability/test_crash_windows.py.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from batchsight.config import Config, config_from_dict
from batchsight.ingest import Ingestor
from batchsight.journal import Journal
from tests.gateway.ingest_support import AWS, make_image, quarantined_files


def in_child(work: Callable[[], Any]) -> int:
    """Run ``work`` in a forked child; how it ended: -9 when killed at a ``die_at`` point."""
    pid = os.fork()
    if pid == 0:  # the child: whatever happens, never back into pytest
        try:
            work()
        finally:
            os._exit(0)
    _, status = os.waitpid(pid, 0)
    return -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)


@contextmanager
def die_at(owner: Any, name: str, *, when: str, only: Callable[..., bool] = lambda *a, **k: True) -> Iterator[None]:
    """``owner.name`` kills the process ``when`` ("before" or "after") it runs, for calls ``only`` accepts."""
    real = getattr(owner, name)

    def dying(*args: Any, **kwargs: Any) -> Any:
        hit = only(*args, **kwargs)
        if hit and when == "before":
            os.kill(os.getpid(), signal.SIGKILL)
        result = real(*args, **kwargs)
        if hit and when == "after":
            os.kill(os.getpid(), signal.SIGKILL)
        return result

    setattr(owner, name, dying)
    try:
        yield
    finally:
        setattr(owner, name, real)


# --- a drop folder on another file system -----------------------------------------------------------

@pytest.fixture
def far_config(tmp_path: Path) -> Iterator[Config]:
    """The drop folder on /dev/shm, the work folder under tmp_path: two file systems."""
    shm = Path("/dev/shm")
    if not shm.is_dir() or os.stat(shm).st_dev == os.stat(tmp_path).st_dev:
        pytest.skip("needs a second file system at /dev/shm")
    with tempfile.TemporaryDirectory(dir=shm) as drop:
        yield config_from_dict({"drop_folder": drop, "work_folder": str(tmp_path / "work"), "aws": AWS})


def _unlinks(path: Path) -> Callable[..., bool]:
    return lambda target, *_, **__: os.fspath(target) == str(path)


def _killed_before_the_unlink(config: Config, path: Path) -> None:
    """Ingest ``path`` in a child killed as it is about to unlink it from the drop folder."""
    def ingest() -> None:
        with die_at(os, "unlink", when="before", only=_unlinks(path)):
            Ingestor(config, Journal(config.journal_path)).ingest(path)

    assert in_child(ingest) == -signal.SIGKILL
    [staged] = (config.work_folder / "staging").iterdir()
    assert staged.read_bytes() == path.read_bytes(), "both: the whole copy in staging, the original"


def test_a_kill_before_the_unlink_ends_in_one_image_and_no_quarantine(far_config: Config) -> None:
    data = make_image("JPEG", seed=81)
    path = far_config.drop_folder / "cam1%x.jpg"  # '%' must survive the staged name
    path.write_bytes(data)
    _killed_before_the_unlink(far_config, path)
    journal = Journal(far_config.journal_path)

    [outcome] = Ingestor(far_config, journal).recover_staging()

    assert outcome.image_id == hashlib.sha256(data).hexdigest()
    assert not path.exists(), "the original left the drop folder: the start-up scan finds nothing"
    assert quarantined_files(far_config) == [] and journal.counts()["quarantined"] == 0
    assert journal.counts()["received"] == 1
    assert list((far_config.work_folder / "staging").iterdir()) == []


def test_a_kill_in_the_recovery_itself_changes_nothing(far_config: Config) -> None:
    path = far_config.drop_folder / "frame.jpg"
    path.write_bytes(make_image("JPEG", seed=82))
    _killed_before_the_unlink(far_config, path)
    for _ in range(2):  # killed again where the recovery unlinks the original
        def recover() -> None:
            with die_at(os, "unlink", when="before", only=_unlinks(path)):
                Ingestor(far_config, Journal(far_config.journal_path)).recover_staging()

        assert in_child(recover) == -signal.SIGKILL
        assert path.exists() and len(list((far_config.work_folder / "staging").iterdir())) == 1
    journal = Journal(far_config.journal_path)
    [outcome] = Ingestor(far_config, journal).recover_staging()
    assert outcome.accepted and not path.exists()
    assert quarantined_files(far_config) == [] and journal.counts()["quarantined"] == 0


def test_a_file_from_a_subfolder_with_a_name_cut_to_fit_is_found(far_config: Config) -> None:
    folder = far_config.drop_folder / ("station-" * 20) / ("camera-" * 20)
    folder.mkdir(parents=True)
    path = folder / "frame-0001.jpg"
    path.write_bytes(make_image("JPEG", seed=83))
    _killed_before_the_unlink(far_config, path)
    [staged] = (far_config.work_folder / "staging").iterdir()
    assert staged.name[33:].startswith("…"), "the staged name lost its start"
    [outcome] = Ingestor(far_config, Journal(far_config.journal_path)).recover_staging()
    assert outcome.accepted and not path.exists() and folder.is_dir()


@pytest.mark.parametrize("change", ["other bytes", "written again"])
def test_a_file_the_camera_wrote_again_under_the_name_is_left_to_be_ingested(far_config: Config,
                                                                             change: str) -> None:
    """The camera reused the name after the crash: other bytes, or the same bytes at another time."""
    first = make_image("JPEG", seed=84)
    path = far_config.drop_folder / "frame.jpg"
    path.write_bytes(first)
    _killed_before_the_unlink(far_config, path)
    again = make_image("JPEG", seed=85) if change == "other bytes" else first
    path.write_bytes(again)
    os.utime(path, ns=(1_714_557_600_000_000_000, 1_714_557_600_000_000_000))
    journal = Journal(far_config.journal_path)
    ingestor = Ingestor(far_config, journal)

    [recovered] = ingestor.recover_staging()
    assert recovered.accepted and path.read_bytes() == again, "left in the drop folder"
    later = ingestor.ingest(path)
    if change == "other bytes":
        assert later.accepted and later.image_id != recovered.image_id
    else:
        assert later.reason is not None and "duplicate" in later.reason, "a second drop, as before"


def test_on_one_file_system_a_file_in_staging_never_removes_one_in_the_drop_folder(config: Config,
                                                                                   journal: Journal) -> None:
    """A rename leaves no original behind: a drop-folder file of that name is a new one, whatever its bytes."""
    config.drop_folder.mkdir(parents=True)
    staging = config.work_folder / "staging"
    staging.mkdir(parents=True)
    path = config.drop_folder / "frame.jpg"
    path.write_bytes(make_image("JPEG", seed=86))
    shutil.copy2(path, staging / f"{'0' * 32}-frame.jpg")  # same bytes and times
    [outcome] = Ingestor(config, journal).recover_staging()
    assert outcome.accepted and path.exists()


# --- the decoder's child, its component killed with a request in hand -------------------------------

@pytest.mark.parametrize("cut", ["its answer has no reader", "its request is cut short"])
def test_an_orphaned_decoder_ends_quietly(tmp_path: Path, cut: str) -> None:
    image = tmp_path / "part.jpg"
    image.write_bytes(make_image("JPEG", (1024, 768), seed=87))
    request = b'{"path": "%s", "ext": "jpg", "limits": {}}\n' % str(image).encode()
    child = subprocess.Popen([sys.executable, "-m", "batchsight.decoder"], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert child.stdin is not None and child.stdout is not None and child.stderr is not None
    if cut == "its answer has no reader":
        child.stdout.close()  # the component's end of the pipe, gone with it
        child.stdin.write(request)
    else:
        child.stdin.write(request[:20])
    child.stdin.close()
    assert child.wait(timeout=30) == 0
    assert child.stderr.read() == b"", "no traceback in the component's log"
