"""The journal file's tables and the rows read from them (journal.py owns every write).

The outbox table lives here with the images because an image's messages are queued and the
image is marked alerted in one SQLite transaction (publishers/outbox.py).
"""
from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from batchsight.lifecycle import ImageState, Route

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
    corrected     INTEGER,
    part_id       TEXT,
    lot           TEXT
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
CREATE TABLE IF NOT EXISTS shadow_images (
    image_id   TEXT PRIMARY KEY,
    at         REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS shadow_tally (
    model                TEXT NOT NULL,
    model_version        TEXT NOT NULL,
    shadow_model         TEXT NOT NULL,
    shadow_model_version TEXT NOT NULL,
    compared             INTEGER NOT NULL DEFAULT 0,
    agreements           INTEGER NOT NULL DEFAULT 0,
    normal_to_anomalous  INTEGER NOT NULL DEFAULT 0,
    anomalous_to_normal  INTEGER NOT NULL DEFAULT 0,
    first_at             REAL NOT NULL,
    updated_at           REAL NOT NULL,
    reported             INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (model, model_version, shadow_model, shadow_model_version)
);
CREATE TABLE IF NOT EXISTS outbox (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    topic      TEXT NOT NULL,
    body       BLOB NOT NULL,
    retain     INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL
);
"""


# Columns added to ``images`` after its first version, with their definitions: a journal file
# written by an older version gains each one it lacks (an additive upgrade, nothing rewritten).
ADDED_COLUMNS = (
    ("route", f"TEXT DEFAULT '{Route.CLOUD.value}'"),  # edge modes: every older image was bound for the cloud
    ("local_json", "TEXT"),
    ("corrected", "INTEGER"),
    ("part_id", "TEXT"),                                 # part context (part_context.py)
    ("lot", "TEXT"),
)


def _add_missing_columns(conn: sqlite3.Connection) -> None:
    columns = {r[1] for r in conn.execute("PRAGMA table_info(images)")}
    if not columns:
        return  # a new file: SCHEMA creates the table whole
    for name, definition in ADDED_COLUMNS:
        if name not in columns:
            conn.execute(f"ALTER TABLE images ADD COLUMN {name} {definition}")


def create_tables(conn: sqlite3.Connection) -> None:
    """Create what is missing; a journal written by an older version gains the newer columns."""
    _add_missing_columns(conn)
    conn.executescript(SCHEMA)


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
    part_id: str | None = None      # the part the image shows, and its lot (part_context.py)
    lot: str | None = None

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> ImageRecord:
        values = dict(row)
        values.pop("updated_at")
        values["state"] = ImageState(values["state"])
        for flag in ("is_anomalous", "corrected"):
            if values[flag] is not None:
                values[flag] = bool(values[flag])
        return cls(**values)


@dataclass(frozen=True)
class OutboxMessage:
    """An MQTT message waiting in the outbox; ``seq`` is its place in the sending order."""

    seq: int
    topic: str
    body: bytes
    retain: bool
    created_at: float
