"""Fixtures the unit suites share: the component's journal as a real SQLite file."""
from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from batchsight.journal import Journal


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
        try:
            journal.close()
        except sqlite3.ProgrammingError:
            pass  # closed by the test already


@pytest.fixture
def journal(open_journal: Callable[[], Journal]) -> Journal:
    return open_journal()
