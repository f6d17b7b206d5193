"""durable.py: the group barrier on this Linux machine, its fallback, and its failures."""
from __future__ import annotations

import ctypes
import errno
import os
from pathlib import Path

import pytest

from batchsight import durable


def _record_fsyncs(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    synced: list[str] = []
    real = os.fsync

    def fsync(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    return synced


def _files(folder: Path, count: int) -> list[Path]:
    folder.mkdir(exist_ok=True)
    paths = [folder / f"f{n}.jpg" for n in range(count)]
    for path in paths:
        path.write_bytes(b"x" * 1000)
    return paths


@pytest.mark.skipif(durable._SYNCFS is None, reason="syncfs(2) is Linux only")  # noqa: SLF001
def test_one_syncfs_covers_a_group_on_one_file_system(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    synced = _record_fsyncs(monkeypatch)
    calls: list[int] = []
    real = durable._SYNCFS  # noqa: SLF001
    def syncfs(fd: int) -> int:
        calls.append(fd)
        assert real is not None
        return real(fd)

    monkeypatch.setattr(durable, "_SYNCFS", syncfs)
    files = _files(tmp_path / "staging", 50)
    durable.sync_files(files, [tmp_path / "staging", tmp_path])
    assert len(calls) == 1 and synced == [], "no fsync per file or per folder on the same file system"


def test_without_syncfs_every_file_and_folder_is_fsynced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    synced = _record_fsyncs(monkeypatch)
    monkeypatch.setattr(durable, "_SYNCFS", None)
    files = _files(tmp_path / "staging", 3)
    durable.sync_files(files, [tmp_path / "staging", tmp_path])
    assert synced == [str(p) for p in files] + [str(tmp_path / "staging"), str(tmp_path)]


@pytest.mark.skipif(durable._SYNCFS is None, reason="syncfs(2) is Linux only")  # noqa: SLF001
def test_a_folder_on_another_file_system_gets_its_own_fsync(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shm = Path("/dev/shm")
    if not shm.is_dir() or os.stat(shm).st_dev == os.stat(tmp_path).st_dev:
        pytest.skip("needs a second file system at /dev/shm")
    synced = _record_fsyncs(monkeypatch)
    durable.sync_files(_files(tmp_path / "staging", 2), [tmp_path / "staging", shm])
    assert synced == [str(shm)]


def test_a_failed_syncfs_raises_with_its_errno(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """syncfs reports write-back errors (Linux 5.8+): a full or failing disk must stop the journal entry."""
    def failing(fd: int) -> int:
        ctypes.set_errno(errno.ENOSPC)
        return -1

    monkeypatch.setattr(durable, "_SYNCFS", failing)
    with pytest.raises(OSError) as caught:
        durable.sync_files(_files(tmp_path / "staging", 1), [tmp_path / "staging"])
    assert caught.value.errno == errno.ENOSPC and "syncfs failed" in str(caught.value)
