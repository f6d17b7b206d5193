"""Fixtures the unit suites share: the component's journal as a real SQLite file, a valid
configuration around it, and the parts that work on real folders (ingest, the watcher)."""
from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from batchsight.config import Config, config_from_dict
from batchsight.ingest import Ingestor
from batchsight.journal import Journal
from batchsight.watcher import DropFolderWatcher
from tests.gateway.ingest_support import AWS


@pytest.fixture
def open_journal(tmp_path: Path) -> Iterator[Callable[[], Journal]]:
    """Open the journal under tmp_path/work as often as a test likes (a reopen is a restart);
    all are closed at the end, unless the test closed them already."""
    opened: list[Journal] = []

    def factory() -> Journal:
        journal = Journal(tmp_path / "work" / "journal.sqlite3")
        opened.append(journal)
        return journal

    yield factory
    for journal in opened:
        with contextlib.suppress(sqlite3.ProgrammingError):  # closed by the test already
            journal.close()


@pytest.fixture
def journal(open_journal: Callable[[], Journal]) -> Journal:
    return open_journal()


@pytest.fixture
def config(tmp_path: Path) -> Config:
    """A valid configuration with the drop and work folders under tmp_path: its journal is the
    ``journal`` fixture's file."""
    return config_from_dict({"drop_folder": str(tmp_path / "drop"), "work_folder": str(tmp_path / "work"),
                             "aws": AWS})


@pytest.fixture
def ingestor(config: Config, journal: Journal) -> Ingestor:
    config.drop_folder.mkdir(parents=True, exist_ok=True)
    return Ingestor(config, journal)


@pytest.fixture
def make_watcher() -> Iterator[Callable[..., DropFolderWatcher]]:
    """Start watchers on real folders (a real watchdog observer); all are stopped at the end."""
    started: list[DropFolderWatcher] = []

    def factory(folder: Path, stable_seconds: float, rescan_seconds: float = 60.0,
                subfolders: bool = True) -> DropFolderWatcher:
        watcher = DropFolderWatcher(folder, stable_seconds, rescan_seconds, subfolders)
        watcher.start()
        started.append(watcher)
        return watcher

    yield factory
    for watcher in started:
        watcher.stop()
