"""ingest.py in groups (one barrier, one transaction) and with files from subfolders of the drop folder."""
from __future__ import annotations

import errno
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

from batchsight.config import Config
from batchsight.ingest import Ingestor
from batchsight.journal import Journal
from tests.gateway.ingest_support import drop, make_image, quarantined_files, staged
from tests.gateway.journal_support import row


# --- a group: one barrier, one transaction ------------------------------------------------------

def test_a_group_shares_one_sync_and_one_transaction(config: Config, journal: Journal, ingestor: Ingestor,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Outcomes come back in the order given, whatever each file's fate, duplicates inside the group included."""
    from batchsight import durable

    good = [make_image("JPEG", seed=n) for n in range(5)]
    names = ["g0.jpg", "bad.jpg", "g1.jpg", "same-as-g0.jpg", "g2.jpg", "g3.jpg", "g4.jpg"]
    datas = [good[0], b"no image", good[1], good[0], good[2], good[3], good[4]]
    paths = [drop(config, name, data) for name, data in zip(names, datas, strict=True)]
    syncs: list[int] = []
    transactions: list[int] = []
    real_sync, real_add = durable.sync_files, Journal.add_many

    def sync_files(files: Iterable[str | Path], folders: Iterable[str | Path]) -> None:
        syncs.append(len(list(files)))
        real_sync([], folders)

    def add_many(self: Journal, records: list[dict[str, Any]], **kwargs: Any) -> list[bool]:
        transactions.append(len(records))
        return real_add(self, records, **kwargs)

    monkeypatch.setattr(durable, "sync_files", sync_files)
    monkeypatch.setattr(Journal, "add_many", add_many)

    outcomes = ingestor.ingest_many(paths)

    assert [o.path for o in outcomes] == paths
    assert [o.accepted for o in outcomes] == [True, False, True, False, True, True, True]
    assert "not a JPEG or PNG" in (outcomes[1].reason or "")
    assert "duplicate" in (outcomes[3].reason or "")
    assert syncs == [6] and transactions == [6], "one barrier and one commit for the group"
    assert journal.counts()["received"] == 5 and journal.counts()["quarantined"] == 2
    assert list(config.drop_folder.iterdir()) == [] and list((config.work_folder / "staging").iterdir()) == []


def test_a_full_disk_mid_group_leaves_every_file_in_drop_or_staging(config: Config, journal: Journal,
                                                                    ingestor: Ingestor,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from batchsight import durable

    paths = [drop(config, f"p{n}.jpg", make_image("JPEG", seed=n)) for n in range(4)]
    real_rename = durable.rename

    def rename(source: Path, target: Path) -> bool:
        if source.name == "p2.jpg":
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_rename(source, target)

    monkeypatch.setattr(durable, "rename", rename)
    with pytest.raises(OSError):
        ingestor.ingest_many(paths)
    assert sorted(p.name for p in config.drop_folder.iterdir()) == ["p2.jpg", "p3.jpg"]
    assert len(list((config.work_folder / "staging").iterdir())) == 2
    monkeypatch.setattr(durable, "rename", real_rename)
    assert all(o.accepted for o in ingestor.recover_staging() + ingestor.ingest_many(paths[2:]))
    assert journal.counts()["received"] == 4


def test_groups_journaled_before_a_full_disk_are_handed_out_before_it_raises(
        config: Config, journal: Journal, ingestor: Ingestor, monkeypatch: pytest.MonkeyPatch) -> None:
    """The runtime hands each group to the verifier as it comes: a failure in a later group of a
    backlog must not keep the earlier, journaled images from being decoded until a restart."""
    from batchsight import durable
    from batchsight import ingest as ingest_module

    monkeypatch.setattr(ingest_module, "GROUP", 2)
    paths = [drop(config, f"g{n}.jpg", make_image("JPEG", seed=40 + n)) for n in range(4)]
    real_rename = durable.rename

    def rename(source: Path, target: Path) -> bool:
        if source.name == "g3.jpg":
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_rename(source, target)

    monkeypatch.setattr(durable, "rename", rename)
    handed_out = []
    with pytest.raises(OSError):
        for outcomes in ingestor.ingest_groups(paths):
            handed_out.append(outcomes)
    assert [[o.path.name for o in group if o.accepted] for group in handed_out] == [["g0.jpg", "g1.jpg"]]
    assert journal.counts()["received"] == 2


# --- files from subfolders of the drop folder ---------------------------------------------------------

def test_a_file_from_a_subfolder_keeps_its_path_below_the_drop_folder_as_its_name(
        config: Config, journal: Journal, ingestor: Ingestor) -> None:
    (config.drop_folder / "cam2" / "2026-11-24").mkdir(parents=True)
    good = drop(config, "cam2/2026-11-24/0001.jpg", make_image("JPEG", seed=71))
    odd = drop(config, "cam2/100%.jpg", make_image("JPEG", seed=72))  # '%' must survive the flat form
    bad = drop(config, "cam2/2026-11-24/0002.jpg", b"not an image")
    outcomes = {o.path: o for o in ingestor.ingest_many([good, odd, bad])}
    assert row(journal, outcomes[good].image_id).file_name == "cam2/2026-11-24/0001.jpg"
    assert row(journal, outcomes[odd].image_id).file_name == "cam2/100%.jpg"
    [moved] = quarantined_files(config)
    assert moved.parent == config.quarantine_folder and moved.name.endswith("-cam2%2F2026-11-24%2F0002.jpg")
    assert list((config.work_folder / "staging").iterdir()) == []
    assert sorted(p.name for p in (config.drop_folder / "cam2").rglob("*")) == ["2026-11-24"]  # folders stay


def test_a_crash_in_staging_gives_back_the_subfolder_name(config: Config, journal: Journal,
                                                         ingestor: Ingestor) -> None:
    data = make_image("PNG", seed=73)
    staged(config, "cam3%2F0007.png", data)  # as _ingest_group writes it, before a crash
    [outcome] = ingestor.recover_staging()
    assert row(journal, outcome.image_id).file_name == "cam3/0007.png"


def test_a_path_too_long_for_one_file_name_keeps_its_end(config: Config, journal: Journal,
                                                         ingestor: Ingestor) -> None:
    """Deep subfolders and long camera names: the staged and quarantined names must fit in
    255 bytes, so the start of the path goes, and the file's own name stays."""
    deep = config.drop_folder.joinpath(*[f"station-{n:02d}-camera-ä-{n:02d}" for n in range(10)])
    deep.mkdir(parents=True)
    good = deep / ("image-" + "x" * 40 + ".jpg")
    good.write_bytes(make_image("JPEG", seed=74))
    bad = deep / "broken-image.jpg"
    bad.write_bytes(b"not an image")
    outcomes = {o.path: o for o in ingestor.ingest_many([good, bad])}
    name = row(journal, outcomes[good].image_id).file_name
    assert name.startswith("…") and name.endswith(f"/{good.name}") and len(name.encode()) <= 213
    [moved] = quarantined_files(config)
    assert moved.name.endswith("%2Fbroken-image.jpg") and "…" in moved.name
    assert "not a JPEG or PNG" in (outcomes[bad].reason or "")
