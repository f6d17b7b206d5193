"""The shadow model's figures in the journal file: how often the candidate agreed with the model
in use, per pair of versions, so they survive a restart (shadow.py publishes them).

Part of the Journal (a base class of it: the journal owns every write to its file). Each
image is counted once: its comparison is recorded, under its image id, before its verdict is,
so a crash in between repeats the detection and finds the image counted already; which images
were compared is forgotten with the images (Journal.prune), the figures stay.
"""
from __future__ import annotations

import sqlite3
import threading
import time
from contextlib import AbstractContextManager
from dataclasses import dataclass


@dataclass(frozen=True)
class ShadowPair:
    """The model in use and the shadow beside it, by name and version."""

    model: str
    model_version: str
    shadow_model: str
    shadow_model_version: str


@dataclass(frozen=True)
class ShadowTally:
    pair: ShadowPair
    compared: int
    agreements: int
    normal_to_anomalous: int   # the model in use said normal, the shadow anomalous
    anomalous_to_normal: int   # the model in use said anomalous, the shadow normal
    first_at: float
    updated_at: float
    reported: int              # ``compared`` when the figures were last published


_PAIR = "model=? AND model_version=? AND shadow_model=? AND shadow_model_version=?"


class ShadowRecords:
    _lock: threading.RLock
    _conn: sqlite3.Connection

    def _tx(self) -> AbstractContextManager[sqlite3.Connection]:
        raise NotImplementedError

    def record_shadow(self, image_id: str, pair: ShadowPair, *, anomalous: bool, shadow_anomalous: bool) -> bool:
        """Count one image's comparison; False when it was counted before (a detection repeated)."""
        now = time.time()
        keys = (pair.model, pair.model_version, pair.shadow_model, pair.shadow_model_version)
        with self._tx() as db:
            if db.execute("INSERT OR IGNORE INTO shadow_images (image_id, at) VALUES (?, ?)",
                          (image_id, now)).rowcount != 1:
                return False
            db.execute("INSERT OR IGNORE INTO shadow_tally (model, model_version, shadow_model, shadow_model_version,"
                       " first_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)", (*keys, now, now))
            db.execute("UPDATE shadow_tally SET compared=compared+1, agreements=agreements+?,"
                       f" normal_to_anomalous=normal_to_anomalous+?, anomalous_to_normal=anomalous_to_normal+?,"
                       f" updated_at=? WHERE {_PAIR}",
                       (int(anomalous == shadow_anomalous), int(shadow_anomalous and not anomalous),
                        int(anomalous and not shadow_anomalous), now, *keys))
        return True

    def shadow_tallies(self, *, unreported: bool = False) -> list[ShadowTally]:
        """Every pair's figures (or those with comparisons not yet published), least recent first."""
        where = " WHERE compared > reported" if unreported else ""
        with self._lock:
            rows = self._conn.execute(
                "SELECT model, model_version, shadow_model, shadow_model_version, compared, agreements,"
                " normal_to_anomalous, anomalous_to_normal, first_at, updated_at, reported FROM shadow_tally"
                f"{where} ORDER BY updated_at").fetchall()
        return [ShadowTally(ShadowPair(*row[:4]), *row[4:]) for row in rows]

    def shadow_reported(self, pair: ShadowPair, compared: int) -> None:
        """The figures up to ``compared`` comparisons are published."""
        with self._tx() as db:
            db.execute(f"UPDATE shadow_tally SET reported=MAX(reported, ?) WHERE {_PAIR}",
                       (compared, pair.model, pair.model_version, pair.shadow_model, pair.shadow_model_version))
