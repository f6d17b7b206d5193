"""Ingest: images/s from drop to journaled through ``Ingestor.ingest_many``, against read + sha256.

Ingest renames each file into staging, reads it (bounded), inspects size, header and
complete stream, hashes it, and per group of ``GROUP`` files pays one sync barrier and one
journal transaction with ``synchronous=FULL`` before moving the files into the spool. The
baseline is a plain read + sha256 of the same files; the floor does the same renames, reads,
hashes and syncs with nothing around them, which is the most any staged, durable ingest can
reach on this disk. Goal: 0.5 of the baseline. A round is a few tenths of a second and this
disk's rename and sync times wander, so the median of several rounds is reported.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import batchsight.ingest as ingest_module
from batchsight import durable
from batchsight.config import Config, config_from_dict
from batchsight.ingest import Ingestor
from batchsight.journal import ImageState, Journal
from batchsight.verifier import PixelVerifier
from batchsight_tools.bench.edge.component import component_logging
from batchsight_tools.bench.edge.figures import Figure, Figures
from batchsight_tools.bench.edge.inputs import edge_settings, replicate, shared_images
from batchsight_tools.bench.edge.proc import bare_import_rss, peak_mb
from batchsight_tools.bench.edge.sizes import Sizes

INGEST_MIN_RATIO = 0.5
BASELINE = "read+sha256"


@dataclass(frozen=True)
class IngestRound:
    """One round of the ingest section, on fresh copies of the set; rates in img/s."""

    baseline: float
    floor: float
    rate: float
    decode_rate: float
    checking_ms: float
    syncing_ms: float
    syncs: int
    decoder_peak_mb: float

    @property
    def ratio(self) -> float:
        return self.rate / self.baseline


def bench_ingest(data: Path, sizes: Sizes, work: Path, figures: Figures) -> None:
    for kind, count in (("casting", sizes.casting), ("circuitboard", sizes.circuitboard)):
        ingest_one_set(kind, shared_images(data, kind), count, sizes.ingest_rounds, work / f"ingest-{kind}",
                       figures)


def ingest_one_set(kind: str, sources: list[Path], count: int, rounds: int, work: Path,
                   figures: Figures) -> None:
    """Report the median of ``rounds`` rounds by ingest's ratio: this disk's rename and sync
    times wander from one second to the next, and a round is a few tenths of a second."""
    done = sorted((ingest_round(kind, sources, count, work / f"round-{n}") for n in range(rounds)),
                  key=lambda r: r.ratio)
    median = done[len(done) // 2]
    ratios = ", ".join(f"{r.ratio:.2f}" for r in done)
    per_image = 1000 / median.rate
    figures.add(Figure(f"ingest floor {kind}", median.floor, "img/s", median.baseline, BASELINE,
                       median.floor / median.baseline,
                       detail="what any staged, durable ingest pays with no checks and no journal: rename "
                              "into staging, read, sha256, rename into the spool, one syncfs per "
                              f"{ingest_module.GROUP} images"))
    figures.add(Figure(f"ingest {kind}", median.rate, "img/s", median.baseline, BASELINE, median.ratio,
                       f">= {INGEST_MIN_RATIO}", median.ratio >= INGEST_MIN_RATIO,
                       f"{count} images, median of {rounds} rounds (ratios {ratios}), "
                       f"{median.rate / median.floor:.2f} of the floor; drop -> journaled (durable): "
                       f"{per_image:.3f} ms per image = inspect {median.checking_ms:.3f} ms (sha256 + structure) "
                       f"+ group sync barrier {median.syncing_ms:.3f} ms ({median.syncs} for {count}) + the rest "
                       f"{per_image - median.checking_ms - median.syncing_ms:.3f} ms "
                       f"(renames, reads, journal commit, log line)"))
    figures.add(Figure(f"ingest+decode {kind}", median.decode_rate, "img/s", median.baseline, BASELINE,
                       median.decode_rate / median.baseline,
                       detail=f"drop -> validated: every pixel decoded by the decoder process meanwhile, "
                              f"{count / median.decode_rate:.2f} s for the set against "
                              f"{count / median.rate:.2f} s to journaled"))
    bare = bare_import_rss("batchsight.decoder")
    figures.add(Figure(f"decoder RSS peak {kind}", median.decoder_peak_mb, "MB", bare, "bare import",
                       median.decoder_peak_mb / bare,
                       detail="the decoder's child process (VmHWM) while it decoded the set; it ends after "
                              "a minute without work, and is not part of the edge RSS figures"))


def ingest_round(kind: str, sources: list[Path], count: int, work: Path) -> IngestRound:
    """Baseline first (files in the page cache, as they are right after a camera wrote them),
    then the floor on a second copy of the set, then ingest."""
    paths = replicate(sources, count, work / "drop", kind)
    floor_paths = replicate(sources, count, work / "floor" / "drop", kind)
    baseline = count / timed(lambda: [hashlib.sha256(p.read_bytes()).digest() for p in paths])
    floor = count / timed(lambda: durable_floor(floor_paths, work / "floor"))
    config = config_from_dict(edge_settings(work, endpoint_url="http://127.0.0.1:9"))
    journal = Journal(config.journal_path)
    with component_logging(work / "edge.log"), clock(durable, "sync_files") as syncs, \
            clock(ingest_module, "inspect") as checks:
        journaled, decoded, decoder_peak = ingest_all(config, journal, paths)
    journal.close()
    shutil.rmtree(work)
    return IngestRound(baseline, floor, count / journaled, count / decoded, sum(checks) * 1000 / count,
                       sum(syncs) * 1000 / count, len(syncs), decoder_peak)


def ingest_all(config: Config, journal: Journal, paths: Sequence[Path]) -> tuple[float, float, float]:
    """Ingest every path through the real Ingestor, a group at a time as the runtime's ticks
    hand a backlog over, with the real verifier and its decoder process working meanwhile;
    seconds until all are journaled (``received``) and until all are decoded (``validated``),
    and the decoder process's peak RSS in MB. Refuses any rejection."""
    ingestor = Ingestor(config, journal)
    verifier = PixelVerifier(config, journal)
    verifier.start()
    try:
        started = time.perf_counter()
        outcomes = []
        for start in range(0, len(paths), ingest_module.GROUP):
            group = ingestor.ingest_many(list(paths[start:start + ingest_module.GROUP]))
            verifier.submit([o.image_id for o in group if o.image_id])
            outcomes += group
        journaled = time.perf_counter() - started
        while journal.counts()[ImageState.RECEIVED.value]:
            time.sleep(0.002)
        decoded = time.perf_counter() - started
        if verifier.decoder.process is None:
            raise RuntimeError("the verifier decoded the set without its decoder process")
        decoder_peak = peak_mb(verifier.decoder.process.pid)
    finally:
        verifier.stop()
    refused = [o for o in outcomes if not o.accepted]
    if refused or journal.counts()[ImageState.VALIDATED.value] != len(paths):
        raise RuntimeError(f"{len(refused)} bench images not journaled, e.g. {refused[:1]}")
    return journaled, decoded, decoder_peak


def durable_floor(paths: Sequence[Path], work: Path) -> None:
    """The file system work ingest cannot do without, in plain Python on str paths: the
    floor its ratio to read+sha256 can reach on this disk, whatever the code around it."""
    staging, spool = work / "staging", work / "spool"
    staging.mkdir()
    spool.mkdir()
    for start in range(0, len(paths), ingest_module.GROUP):
        staged = []
        for path in paths[start:start + ingest_module.GROUP]:
            target = f"{staging}/{path.name}"
            os.replace(path, target)
            with open(target, "rb") as file:
                staged.append((target, hashlib.sha256(file.read()).hexdigest()))
        durable.sync_files([], [staging])
        for target, digest in staged:
            os.replace(target, f"{spool}/{digest}.jpg")
        durable.fsync_dir(spool)


@contextlib.contextmanager
def clock(owner: Any, name: str) -> Iterator[list[float]]:
    """Times every call of ``owner.name`` made meanwhile, inside the timed run itself.

    Used on ingest's group sync barrier (its cost depends on the disk, not on us; SQLite's own
    fsyncs are not seen) and on ingest's ``inspect`` (SHA-256 + structure).
    """
    costs: list[float] = []
    real = getattr(owner, name)

    def clocked(*args: Any) -> Any:
        started = time.perf_counter()
        try:
            return real(*args)
        finally:
            costs.append(time.perf_counter() - started)

    setattr(owner, name, clocked)
    try:
        yield costs
    finally:
        setattr(owner, name, real)


def timed(work: Callable[[], object]) -> float:
    started = time.perf_counter()
    work()
    return time.perf_counter() - started
