"""The edge program's own costs, each next to a baseline measured in the same run.

Figures (one line each, then a summary; exit 0 when every goal is met, else 1):

  - ingest: images/s from drop to journaled through ``Ingestor.ingest_many`` (staging rename,
    bounded read, inspection of size, header and complete stream, SHA-256, one sync barrier
    and one journal transaction with ``synchronous=FULL`` per group, move into the spool),
    for casting-size (512x512, ~25 KB) and circuit-board-size (2000x1334, ~1.3 MB) JPEGs;
    baseline: plain read + sha256 of the same files. Goal: 0.5 of baseline. Also reported:
    the floor (the same renames, read, hash and syncs with nothing around them), drop to
    validated, every pixel decoded by the decoder's child process meanwhile, and that
    process's peak RSS. The median of 3 rounds.
    The watcher's completeness wait (``ingest.stable_seconds``) is a configured delay, not
    work, and is left out.
  - upload: ``CloudLink.submit`` of one journaled batch of 500 (uploads to S3 with their
    journal records, SendMessageBatch, StartExecution) into moto server (its own process, so
    the emulator does not share our GIL), against s3transfer's TransferManager uploading the
    same files into the same emulator at the same concurrency with the same checksum
    algorithm (SHA-256), followed by the same SQS and Step Functions calls. Best of four
    alternating rounds. Goal: at most 1.15x, for the whole batch and for the S3 part alone.
  - drop-to-result latency, p50 and p95: the whole product in local mode (LocalCloud with
    the real state machine and the local backend, a real MQTT broker, the edge program as its
    own process with an immediate batch trigger, ``batch.max_age_seconds: 0.01``), a camera dropping
    casting stream images at a steady rate; baseline: the configured waits an image meets
    while the model is hosted (file settle + edge tick + result poll; the detail also gives
    the cold floor, with the model start on its readiness poll).
  - memory: peak (VmHWM) and steady (median VmRSS) of ``python -m batchsight run`` with
    10,000 images waiting in its journal while the cloud is unreachable; baseline: a bare
    ``python -c 'import batchsight.runtime'``. Goal: under 100 MB steady.
  - detection: images/s of the local detector (aligned and patchcore, fitted on 10 normal
    images) on casting and circuit-board images, 1 and 2 threads; baseline: Pillow decode
    (open + load) of the same images, same thread counts.

    python bench/edge.py              # full sizes (about 3 minutes on 2 cores)
    python bench/edge.py --quick      # small counts (the smoke test)
    python bench/edge.py --only ingest,upload --markdown /tmp/figures.md
"""
from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import json
import logging
import math
import os
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "component"))
sys.path.insert(1, str(REPO / "cloud" / "src"))

import batchsight.ingest as ingest_module  # noqa: E402
from batchsight import durable  # noqa: E402
from batchsight.cloud_link import CloudLink  # noqa: E402
from batchsight.config import Config, config_from_dict  # noqa: E402
from batchsight.ingest import Ingestor  # noqa: E402
from batchsight.journal import ImageState, Journal  # noqa: E402
from batchsight.runtime import aws_clients  # noqa: E402
from batchsight.verifier import PixelVerifier  # noqa: E402
from batchsight_tools.localcloud.stack import CREDENTIALS, free_port  # noqa: E402

SECTIONS = ("ingest", "upload", "latency", "memory", "detection")
INGEST_MIN_RATIO = 0.5
UPLOAD_MAX_RATIO = 1.15
STEADY_RSS_MAX_MB = 100.0
MODEL_START_SECONDS = 2.0   # the local backend's simulated start (LOCAL_MODEL_STARTUP_SECONDS)
POLL_SECONDS = 1            # the state machine's readiness poll (PollSeconds, whole seconds)
STABLE_SECONDS = 0.5        # edge ingest.stable_seconds; a closed file settles this long
RESULT_POLL_SECONDS = 0.5   # edge results.poll_seconds
# The immediate trigger: everything waiting is cut at the first tick after it was journaled.
# (batch.max_images: 1 cuts one image per tick instead, which caps the edge near 2 images/s.)
IMMEDIATE_AGE_SECONDS = 0.01
RUNS = 3                    # detection: best of this many runs per thread count


@dataclass(frozen=True)
class Sizes:
    """How much work each section does; ``--quick`` shrinks every count, not the method."""

    casting: int = 2000
    circuitboard: int = 200
    ingest_rounds: int = 3
    upload: int = 500
    upload_rounds: int = 4
    latency: int = 100
    latency_gap: float = 0.25
    memory: int = 10_000
    memory_seconds: float = 20.0
    memory_batch: int = 500     # batch.max_images: the backlog is cut into batches that fail to upload
    detect_casting: int = 300
    detect_circuitboard: int = 40
    patchcore_casting: int = 40       # patchcore is some 20x slower: fewer images, same method
    patchcore_circuitboard: int = 10
    fit_normals: int = 10


QUICK = Sizes(casting=60, circuitboard=6, ingest_rounds=1, upload=30, upload_rounds=1, latency=6,
              latency_gap=0.3, memory=300, memory_seconds=4.0, memory_batch=100, detect_casting=10,
              detect_circuitboard=3, patchcore_casting=4, patchcore_circuitboard=2,
              fit_normals=4)


@dataclass
class Figure:
    """One measured figure with the baseline that makes it readable."""

    name: str
    value: float
    unit: str
    baseline: float | None = None
    baseline_name: str = ""
    ratio: float | None = None
    goal: str = ""
    met: bool | None = None     # None: the figure has no goal, it is only reported
    detail: str = ""

    def line(self) -> str:
        text = f"[{self.name}] {_num(self.value)} {self.unit}"
        if self.baseline is not None:
            text += f"; baseline {self.baseline_name} {_num(self.baseline)} {self.unit}"
        if self.ratio is not None:
            text += f"; ratio {self.ratio:.3f}"
        if self.goal:
            text += f"; goal {self.goal}: {'met' if self.met else 'NOT MET'}"
        if self.detail:
            text += f"  ({self.detail})"
        return text


def _num(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}" if abs(value) < 1 else f"{value:.1f}"


def report(figure: Figure, figures: list[Figure]) -> None:
    figures.append(figure)
    print(figure.line(), flush=True)


# --- inputs -----------------------------------------------------------------------------------

def shared_images(data: Path, kind: str) -> list[Path]:
    """The JPEGs of one set, every split; the casting stream replays a camera, so it counts too."""
    files = sorted(p for p in (data / kind).glob("*/*/*") if p.suffix.lower() in (".jpg", ".jpeg"))
    if not files:
        raise SystemExit(f"no {kind} images under {data / kind}: see ../shared/data/README.md")
    return files


def unique_jpeg(data: bytes, tag: int) -> bytes:
    """The same picture with a JPEG comment segment (COM) naming ``tag`` right after SOI.

    Replicated files must differ in bytes, or the journal (keyed by SHA-256) keeps only the
    first and quarantines the rest as duplicates; a comment changes nothing that decodes.
    """
    comment = f"batchsight bench copy {tag}".encode()
    return data[:2] + b"\xff\xfe" + struct.pack(">H", len(comment) + 2) + comment + data[2:]


def replicate(sources: Sequence[Path], count: int, folder: Path, prefix: str) -> list[Path]:
    """``count`` distinct files in ``folder``, cycling through ``sources``."""
    folder.mkdir(parents=True, exist_ok=True)
    originals = [p.read_bytes() for p in sources]
    paths = []
    for n in range(count):
        path = folder / f"{prefix}_{n:05d}.jpg"
        path.write_bytes(unique_jpeg(originals[n % len(originals)], n))
        paths.append(path)
    os.sync()  # written back now, so the timed sections do not share the disk with writeback
    return paths


def small_jpeg() -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("L", (64, 64), color=128).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def edge_settings(work: Path, *, endpoint_url: str, mqtt_port: int = 1883,
                  **sections: dict[str, Any]) -> dict[str, Any]:
    """An edge configuration as the YAML file would hold it, for one bench run."""
    return {
        "site": "bench", "line": "line-1", "device": "gw-bench",
        "drop_folder": str(work / "drop"), "work_folder": str(work / "edge"),
        "aws": {"region": "us-east-1", "source_bucket": "bench-source", "final_bucket": "bench-final",
                "queue_url": f"{endpoint_url}/123456789012/bench-images",
                "state_machine_arn": "arn:aws:states:us-east-1:123456789012:stateMachine:bench",
                "endpoint_url": endpoint_url},
        "mqtt": {"host": "127.0.0.1", "port": mqtt_port},
        **sections,
    }


@contextlib.contextmanager
def component_logging(path: Path) -> Iterator[None]:
    """The component's JSON INFO logs, as in production, but into a file instead of stderr.

    Ingest logs one line per image; leaving logging off would flatter the figure.
    """
    from batchsight.logs import JsonFormatter

    logger = logging.getLogger("batchsight")
    handler = logging.FileHandler(path)
    handler.setFormatter(JsonFormatter())
    saved = (logger.level, logger.propagate)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        handler.close()
        logger.setLevel(saved[0])
        logger.propagate = saved[1]


def journal_quickly(config: Config, images: Iterable[tuple[str, bytes]]) -> float:
    """Spool and journal images as ingest records them (checked, named by SHA-256), with the
    Journal API; seconds taken. This is set-up, not what is measured, so the journal skips its
    fsyncs here: ingest at its real cost would take minutes for 10,000 images."""
    from batchsight.images import check_image

    spool = config.work_folder / "spool"
    spool.mkdir(parents=True, exist_ok=True)
    journal = Journal(config.journal_path)
    connection = getattr(journal, "_conn", None)
    if connection is not None:
        connection.execute("PRAGMA synchronous=OFF")
    started = time.perf_counter()
    try:
        for name, data in images:
            checked = check_image(data, config.ingest)
            path = spool / f"{checked.image_id}.{checked.ext}"
            path.write_bytes(data)
            journal.add({"image_id": checked.image_id, "file_name": name, "path": str(path),
                         "ext": checked.ext, "size": checked.size, "width": checked.width,
                         "height": checked.height, "captured_at": "2026-11-23T08:00:00.000Z"})
    finally:
        journal.close()
    return time.perf_counter() - started


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
        assert verifier.decoder.process is not None
        decoder_peak = _status_mb(Path(f"/proc/{verifier.decoder.process.pid}/status").read_text(), "VmHWM")
    finally:
        verifier.stop()
    refused = [o for o in outcomes if not o.accepted]
    if refused or journal.counts()[ImageState.VALIDATED.value] != len(paths):
        raise RuntimeError(f"{len(refused)} bench images not journaled, e.g. {refused[:1]}")
    return journaled, decoded, decoder_peak


# --- ingest -----------------------------------------------------------------------------------

def bench_ingest(data: Path, sizes: Sizes, work: Path, figures: list[Figure]) -> None:
    for kind, count in (("casting", sizes.casting), ("circuitboard", sizes.circuitboard)):
        ingest_one_set(kind, shared_images(data, kind), count, sizes.ingest_rounds, work / f"ingest-{kind}",
                       figures)


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


def ingest_one_set(kind: str, sources: list[Path], count: int, rounds: int, work: Path,
                   figures: list[Figure]) -> None:
    """Report the median of ``rounds`` rounds by ingest's ratio: this disk's rename and sync
    times wander from one second to the next, and a round is a few tenths of a second."""
    done = sorted((ingest_round(kind, sources, count, work / f"round-{n}") for n in range(rounds)),
                  key=lambda r: r.ratio)
    median = done[len(done) // 2]
    ratios = ", ".join(f"{r.ratio:.2f}" for r in done)
    per_image = 1000 / median.rate
    report(Figure(f"ingest floor {kind}", median.floor, "img/s", median.baseline, "read+sha256",
                  median.floor / median.baseline,
                  detail="what any staged, durable ingest pays with no checks and no journal: rename "
                         "into staging, read, sha256, rename into the spool, one syncfs per "
                         f"{ingest_module.GROUP} images"), figures)
    report(Figure(f"ingest {kind}", median.rate, "img/s", median.baseline, "read+sha256", median.ratio,
                  f">= {INGEST_MIN_RATIO}", median.ratio >= INGEST_MIN_RATIO,
                  f"{count} images, median of {rounds} rounds (ratios {ratios}), {median.rate / median.floor:.2f} "
                  f"of the floor; drop -> journaled (durable): {per_image:.3f} ms per image = inspect "
                  f"{median.checking_ms:.3f} ms (sha256 + structure) + group sync barrier "
                  f"{median.syncing_ms:.3f} ms ({median.syncs} for {count}) + the rest "
                  f"{per_image - median.checking_ms - median.syncing_ms:.3f} ms "
                  f"(renames, reads, journal commit, log line)"), figures)
    report(Figure(f"ingest+decode {kind}", median.decode_rate, "img/s", median.baseline, "read+sha256",
                  median.decode_rate / median.baseline,
                  detail=f"drop -> validated: every pixel decoded by the decoder process meanwhile, "
                         f"{count / median.decode_rate:.2f} s for the set against "
                         f"{count / median.rate:.2f} s to journaled"), figures)
    bare = bare_import_rss("batchsight.decoder")
    report(Figure(f"decoder RSS peak {kind}", median.decoder_peak_mb, "MB", bare, "bare import",
                  median.decoder_peak_mb / bare,
                  detail="the decoder's child process (VmHWM) while it decoded the set; it ends after "
                         "a minute without work, and is not part of the edge RSS figures"), figures)


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


# --- upload -----------------------------------------------------------------------------------

@contextlib.contextmanager
def moto_process() -> Iterator[str]:
    """moto server in a process of its own: the emulator's CPU is not charged to our GIL."""
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port, 30.0)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=10)


def wait_for_port(port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


def create_cloud_resources(clients: dict[str, Any], config: Config) -> None:
    """What submit needs besides its queue: the source bucket and a state machine (one Pass
    state; moto records executions without running them, so nothing else takes the CPU)."""
    clients["s3"].create_bucket(Bucket=config.aws.source_bucket)
    definition = {"StartAt": "Done", "States": {"Done": {"Type": "Pass", "End": True}}}
    clients["stepfunctions"].create_state_machine(
        name=config.aws.state_machine_arn.rsplit(":", 1)[-1], definition=json.dumps(definition),
        roleArn="arn:aws:iam::123456789012:role/bench")


def new_queue(sqs: Any, name: str) -> str:
    """An empty queue per run: moto's SQS gets slower with every message it holds."""
    return str(sqs.create_queue(QueueName=name)["QueueUrl"])


@dataclass
class UploadRun:
    total: float        # the whole batch: uploads, messages, execution start (and our journal)
    uploads: float      # from the start until the last PutObject answered


class PutClock:
    """Records when the last PutObject answered, whoever made it (ours or s3transfer)."""

    def __init__(self, s3: Any) -> None:
        self.last = 0.0
        s3.meta.events.register("after-call.s3.PutObject", self._answered)

    def _answered(self, **_: Any) -> None:
        self.last = max(self.last, time.perf_counter())


def bench_upload(data: Path, sizes: Sizes, work: Path, figures: list[Figure]) -> None:
    sources = replicate(shared_images(data, "casting"), sizes.upload, work / "camera", "part")
    with moto_process() as endpoint:
        settings = edge_settings(work, endpoint_url=endpoint)
        config = config_from_dict(settings)
        clients = aws_clients(config)  # the component's own client settings (retries, timeouts)
        create_cloud_resources(clients, config)
        clock = PutClock(clients["s3"])
        ours, baseline = [], []
        for round_ in range(sizes.upload_rounds):  # alternate, so drift hits both sides alike
            run, batch = submit_round(settings, clients, clock, sources, work / f"round{round_}")
            ours.append(run)
            baseline.append(plain_round(clients, clock, config, batch, f"baseline{round_}"))
    concurrency = CloudLink.__init__.__kwdefaults__["upload_concurrency"]
    best, best_baseline = min(ours, key=lambda r: r.total), min(baseline, key=lambda r: r.total)
    megabytes = sum(p.stat().st_size for p in sources) / 1e6
    detail = (f"{sizes.upload} casting JPEGs, {megabytes:.0f} MB, S3 concurrency {concurrency}, SHA-256 "
              f"checksums, best of {sizes.upload_rounds}; baseline = s3transfer, then the same "
              f"SendMessageBatch calls and StartExecution")
    report(Figure("upload batch (submit)", best.total, "s", best_baseline.total, "s3transfer+enqueue+start",
                  best.total / best_baseline.total, f"<= {UPLOAD_MAX_RATIO}x",
                  best.total / best_baseline.total <= UPLOAD_MAX_RATIO, detail), figures)
    uploads, baseline_uploads = min(r.uploads for r in ours), min(r.uploads for r in baseline)
    report(Figure("upload S3 part", uploads, "s", baseline_uploads, "s3transfer", uploads / baseline_uploads,
                  f"<= {UPLOAD_MAX_RATIO}x", uploads / baseline_uploads <= UPLOAD_MAX_RATIO,
                  "start to the last PutObject answer, best of the same runs; ours includes its "
                  "journal records"), figures)


@dataclass
class SubmittedBatch:
    batch_id: str
    files: list[tuple[Path, str]]     # spooled file, source key
    messages: list[str]               # the SQS bodies submit sent, to send the same in the baseline


def submit_round(settings: dict[str, Any], clients: dict[str, Any], clock: PutClock,
                 sources: Sequence[Path], work: Path) -> tuple[UploadRun, SubmittedBatch]:
    """Journal the images in a fresh work folder (set-up), cut one batch, time submit."""
    queue_url = new_queue(clients["sqs"], f"bench-{work.name}")
    config = config_from_dict({**settings, "drop_folder": str(work / "drop"),
                               "work_folder": str(work / "edge"),
                               "aws": {**settings["aws"], "queue_url": queue_url}})
    journal_quickly(config, ((source.name, source.read_bytes()) for source in sources))
    os.sync()  # the spool is on disk, as it would be long before a batch is cut
    journal = Journal(config.journal_path)
    batch_id = f"bench-{work.name}-{time.time_ns()}"
    journal.cut_batch(batch_id, max_images=len(sources))
    link = CloudLink(config, journal, s3=clients["s3"], sqs=clients["sqs"], sfn=clients["stepfunctions"])
    with component_logging(work / "edge.log"):
        started = time.perf_counter()
        link.submit(batch_id)
        total = time.perf_counter() - started
    images = journal.batch_images(batch_id)
    journal.close()
    if len(images) != len(sources) or any(i.state is not ImageState.SUBMITTED for i in images):
        raise RuntimeError("submit left images behind: the upload figure would be wrong")
    batch = SubmittedBatch(batch_id, [(Path(i.path), link.source_key(i)) for i in images],
                           [json.dumps(link.message(batch_id, i)) for i in images])
    return UploadRun(total, clock.last - started), batch


def plain_round(clients: dict[str, Any], clock: PutClock, config: Config, batch: SubmittedBatch,
                name: str) -> UploadRun:
    """The same AWS work done plainly: s3transfer for the objects (same files, same concurrency,
    SHA-256 that botocore computes from the file, where ours hashes the bytes it read and sends
    that), then the same messages ten at a time and the same StartExecution; no journal."""
    queue_url = new_queue(clients["sqs"], f"bench-{name}")
    started = time.perf_counter()
    transfer_files(clients["s3"], config, batch.files, prefix=name)
    uploads = clock.last - started
    for start in range(0, len(batch.messages), 10):
        clients["sqs"].send_message_batch(QueueUrl=queue_url, Entries=[
            {"Id": str(n), "MessageBody": body} for n, body in enumerate(batch.messages[start:start + 10])])
    clients["stepfunctions"].start_execution(stateMachineArn=config.aws.state_machine_arn,
                                             name=f"{batch.batch_id}-{name}", input="{}")
    return UploadRun(time.perf_counter() - started, uploads)


def transfer_files(s3: Any, config: Config, files: list[tuple[Path, str]], *, prefix: str) -> None:
    """s3transfer, what boto3's upload_file runs, at the component's upload concurrency.

    One TransferManager for the whole batch: upload_file once per file would send them one at
    a time, since its concurrency only splits a single large file into parts.
    """
    from boto3.s3.transfer import TransferConfig, create_transfer_manager

    transfer = TransferConfig(max_concurrency=CloudLink.__init__.__kwdefaults__["upload_concurrency"],
                              preferred_transfer_client="classic")
    with create_transfer_manager(s3, transfer) as manager:
        futures = [manager.upload(str(path), config.aws.source_bucket, f"{prefix}/{key}",
                                  extra_args={"ContentType": "image/jpeg", "ChecksumAlgorithm": "SHA256",
                                              "Metadata": {"file-name": path.name, "device": config.device}})
                   for path, key in files]
        for future in futures:
            future.result()


# --- drop-to-result latency --------------------------------------------------------------------

def bench_latency(data: Path, sizes: Sizes, work: Path, figures: list[Figure]) -> None:
    """The product end to end; the cloud runs in this process, as in the demo and the tests."""
    from batchsight_tools.localcloud.broker import MqttBroker
    from batchsight_tools.localcloud.hmi import Subscriber

    frames = sorted((data / "casting" / "stream" / "images").glob("*.jp*g"))[: sizes.latency]
    saved_environment = dict(os.environ)
    cloud, sfn_arn = start_local_cloud(data, work)
    latencies: dict[str, list[float]] = {}
    try:
        for mode in ("cloud", "edge"):  # edge: the same model, served on the gateway (batchsight serve)
            with MqttBroker() as broker:
                subscriber = Subscriber(broker.port, "factory/bench/line-1/gw-bench/inspection/#", echo=False)
                subscriber.start()
                try:
                    latencies[mode] = run_camera(cloud, broker.port, subscriber, frames, sizes.latency_gap,
                                                 work / mode, inference=mode,
                                                 model=work / "model" / "detector.npz")
                finally:
                    subscriber.stop()
        wait_for_executions(cloud, sfn_arn)
        executions = count_executions(cloud, sfn_arn)
    finally:
        cloud.stop()
        os.environ.clear()
        os.environ.update(saved_environment)
    ledger = work / "hosting" / "ledger.jsonl"
    starts = len(ledger.read_text().splitlines()) if ledger.exists() else 0
    from batchsight.runtime import TICK_SECONDS

    warm = min(STABLE_SECONDS, 1.0) + TICK_SECONDS + RESULT_POLL_SECONDS
    cold = warm + math.ceil(MODEL_START_SECONDS / POLL_SECONDS) * POLL_SECONDS
    detail = (f"{len(latencies['cloud'])} of {len(frames)} images, one every {sizes.latency_gap} s, "
              f"batch.max_age_seconds {IMMEDIATE_AGE_SECONDS}; {executions} executions, {starts} model "
              f"starts; floor with the model hosted = settle {min(STABLE_SECONDS, 1.0)} + edge tick "
              f"{TICK_SECONDS} + result poll {RESULT_POLL_SECONDS} s; an image that waits for a start "
              f"also pays {MODEL_START_SECONDS} s on a {POLL_SECONDS} s readiness poll ({cold:.1f} s)")
    for percent in (50, 95):
        value = percentile(latencies["cloud"], percent) if latencies["cloud"] else float("nan")
        report(Figure(f"drop-to-result p{percent}", value, "s", warm, "floor (hosted)", value / warm,
                      detail=detail if percent == 50 else ""), figures)
    floor = min(STABLE_SECONDS, 1.0) + TICK_SECONDS
    for percent in (50, 95):
        value = percentile(latencies["edge"], percent) if latencies["edge"] else float("nan")
        report(Figure(f"drop-to-result p{percent}, edge mode", value, "s", floor, "floor (settle + tick)",
                      value / floor, detail=(f"{len(latencies['edge'])} of {len(frames)} images judged by "
                                             "the gateway's own detector process, no cloud call")
                      if percent == 50 else ""), figures)


def start_local_cloud(data: Path, work: Path) -> tuple[Any, str]:
    """LocalCloud with the local backend, fitted on casting normals (the camera's product)."""
    from batchsight_detector import fit
    from batchsight_tools.localcloud.stack import LocalCloud

    normals = [p.read_bytes() for p in sorted((data / "casting" / "train" / "normal").glob("*.jp*g"))]
    model_path = work / "model" / "detector.npz"
    fit(normals, working_size=128).save(model_path)
    cloud = LocalCloud(parameters={"PollSeconds": str(POLL_SECONDS), "DrainWorkers": "2", "DetectTps": "50",
                                   "ModelBackend": "local"},
                       function_environment={"LOCAL_MODEL_PATH": str(model_path),
                                             "LOCAL_MODEL_STATE_DIR": str(work / "hosting"),
                                             "LOCAL_MODEL_STARTUP_SECONDS": str(MODEL_START_SECONDS),
                                             "POWERTOOLS_LOG_LEVEL": "WARNING",
                                             "POWERTOOLS_METRICS_DISABLED": "true"})
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    outputs = cloud.start()
    return cloud, outputs.state_machine_arn


def run_camera(cloud: Any, broker_port: int, subscriber: Any, frames: list[Path], gap: float,
               work: Path, *, inference: str, model: Path) -> list[float]:
    """Start the edge, wait until it says it runs (and judges where it should), drop the frames,
    collect the latencies."""
    from batchsight_tools.localcloud.broker import protocol_for_port

    outputs = cloud.outputs
    settings = edge_settings(
        work, endpoint_url=outputs.endpoint_url, mqtt_port=broker_port,
        batch={"max_age_seconds": IMMEDIATE_AGE_SECONDS, "interval_seconds": 3600.0},
        ingest={"stable_seconds": STABLE_SECONDS}, results={"poll_seconds": RESULT_POLL_SECONDS})
    settings["aws"].update(source_bucket=outputs.source_bucket, final_bucket=outputs.final_bucket,
                           queue_url=outputs.queue_url, state_machine_arn=outputs.state_machine_arn)
    settings["mqtt"]["protocol"] = protocol_for_port(broker_port)
    if inference != "cloud":
        settings["inference"] = {"mode": inference, "model": str(model),
                                 "endpoint": f"http://127.0.0.1:{free_port()}"}
    edge = start_edge(settings, work)
    try:
        wait_until(lambda: any(s.get("judging") == inference for s in subscriber.statuses), 60.0,
                   f"the edge's status saying it judges in the {inference}", edge)
        dropped = drop_frames(frames, Path(settings["drop_folder"]), gap)
        wait_until(lambda: len(subscriber.results) >= len(frames), 60.0 + len(frames) * 0.5,
                   "every result on MQTT", edge, required=False)
    finally:
        stop_process(edge)
    return sorted(arrived - dropped[message["file_name"]]
                  for arrived, message in list(subscriber.results.values()))


def drop_frames(frames: list[Path], drop: Path, gap: float) -> dict[str, float]:
    """Write each frame in one go (the camera's usual way); the time is when it is complete."""
    drop.mkdir(parents=True, exist_ok=True)
    dropped = {}
    for frame in frames:
        (drop / frame.name).write_bytes(frame.read_bytes())
        dropped[frame.name] = time.time()
        time.sleep(gap)
    return dropped


def wait_for_executions(cloud: Any, arn: str, timeout: float = 60.0) -> None:
    """Let the last execution stop the model before the emulator goes away."""
    sfn = cloud.client("stepfunctions")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not sfn.list_executions(stateMachineArn=arn, statusFilter="RUNNING")["executions"]:
            return
        time.sleep(0.5)


def count_executions(cloud: Any, arn: str) -> int:
    pages = cloud.client("stepfunctions").get_paginator("list_executions").paginate(stateMachineArn=arn)
    return sum(len(page["executions"]) for page in pages)


def percentile(values: Sequence[float], percent: int) -> float:
    return statistics.quantiles(values, n=100)[percent - 1] if len(values) > 1 else values[0]


# --- memory -----------------------------------------------------------------------------------

def bench_memory(data: Path, sizes: Sizes, work: Path, figures: list[Figure]) -> None:
    from batchsight_tools.localcloud.broker import MqttBroker, protocol_for_port

    baseline = bare_import_rss()
    unreachable = f"http://127.0.0.1:{free_port()}"  # nothing listens: connection refused
    settings = edge_settings(work, endpoint_url=unreachable, batch={"max_images": sizes.memory_batch})
    journal_seconds = fill_journal(config_from_dict(settings), sizes.memory)
    with MqttBroker() as broker:
        settings["mqtt"].update(port=broker.port, protocol=protocol_for_port(broker.port))
        edge = start_edge(settings, work)
        try:
            samples, peak = sample_rss(edge, sizes.memory_seconds)
        finally:
            stop_process(edge)
    waiting, batches = waiting_images(config_from_dict(settings))
    steady = statistics.median(samples[len(samples) // 2:])
    detail = (f"{waiting:,} images waiting (journaled in {journal_seconds:.1f} s), {batches} batches cut "
              f"of at most {sizes.memory_batch}, cloud unreachable, "
              f"{sizes.memory_seconds:.0f} s sampled every 0.25 s; steady = median of the second half")
    report(Figure("edge RSS steady", steady, "MB", baseline, "bare import", steady / baseline,
                  f"< {STEADY_RSS_MAX_MB:.0f} MB", steady < STEADY_RSS_MAX_MB, detail), figures)
    report(Figure("edge RSS peak", peak, "MB", baseline, "bare import", peak / baseline), figures)


def bare_import_rss(module: str = "batchsight.runtime") -> float:
    """RSS of a process that only imports ``module``: what the code alone costs."""
    script = f"import {module}; print(open('/proc/self/status').read())"
    status = subprocess.run([sys.executable, "-c", script], check=True, capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": str(REPO / "component")}).stdout
    return _status_mb(status, "VmRSS")


def fill_journal(config: Config, count: int) -> float:
    """``count`` small distinct JPEGs waiting in the journal; seconds taken."""
    base = small_jpeg()
    return journal_quickly(config, ((f"waiting_{n:05d}.jpg", unique_jpeg(base, n)) for n in range(count)))


def waiting_images(config: Config) -> tuple[int, int]:
    """Images still short of the cloud after the run (the backlog really stayed), and the
    batches cut from them that the edge kept failing to upload."""
    journal = Journal(config.journal_path)
    try:
        return journal.counts().get(ImageState.VALIDATED.value, 0), len(journal.open_batches())
    finally:
        journal.close()


def sample_rss(process: subprocess.Popen[bytes], seconds: float) -> tuple[list[float], float]:
    """VmRSS samples (MB) over ``seconds`` after the program has started, and VmHWM at the end."""
    status = Path(f"/proc/{process.pid}/status")
    samples = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the edge program exited with {process.returncode} during the memory run")
        samples.append(_status_mb(status.read_text(), "VmRSS"))
        time.sleep(0.25)
    return samples, _status_mb(status.read_text(), "VmHWM")


def _status_mb(status: str, field: str) -> float:
    for line in status.splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024.0  # kB
    raise RuntimeError(f"{field} missing from /proc status")


# --- the edge program as a process ---------------------------------------------------------------

def start_edge(settings: dict[str, Any], work: Path) -> subprocess.Popen[bytes]:
    """``python -m batchsight run --config``, the program Greengrass runs, logs to a file."""
    import yaml

    path = work / "edge.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(settings, sort_keys=False))
    env = {**os.environ, **CREDENTIALS}
    env.pop("AWS_ENDPOINT_URL", None)  # the edge takes its endpoint from its configuration
    return subprocess.Popen([sys.executable, "-m", "batchsight", "run", "--config", str(path)],
                            stdout=(work / "edge.log").open("ab"), stderr=subprocess.STDOUT, env=env)


def stop_process(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def wait_until(predicate: Callable[[], object], timeout: float, what: str,
               process: subprocess.Popen[bytes], *, required: bool = True) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        if process.poll() is not None:
            raise RuntimeError(f"the edge program exited with {process.returncode} before {what}")
        time.sleep(0.1)
    if required:
        raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what}")
    print(f"  (timed out after {timeout:.0f} s waiting for {what})", flush=True)


# --- detection ----------------------------------------------------------------------------------

def bench_detection(data: Path, sizes: Sizes, work: Path, figures: list[Figure]) -> None:
    counts = {"casting": {"aligned": sizes.detect_casting, "patchcore": sizes.patchcore_casting},
              "circuitboard": {"aligned": sizes.detect_circuitboard,
                               "patchcore": sizes.patchcore_circuitboard}}
    for kind, per_method in counts.items():
        normals = [p.read_bytes() for p in sorted((data / kind / "train" / "normal").glob("*.jp*g"))]
        images = scored_images(data, kind)
        for method, count in per_method.items():
            scored = [p.read_bytes() for p in images[:count]]
            detection_figures(kind, method, normals[: sizes.fit_normals], scored, figures)


def scored_images(data: Path, kind: str) -> list[Path]:
    """Images the model was not fitted on: the test split, then the casting camera stream."""
    return [p for p in shared_images(data, kind) if p.parts[-3] != "train"]


def detection_figures(kind: str, method: str, normals: list[bytes], scored: list[bytes],
                      figures: list[Figure]) -> None:
    """Detect and decode-only on the same images, 1 and 2 threads, each the best of RUNS runs
    taken in turn (other work on a shared 2-core machine steals whole seconds from one run)."""
    from batchsight_detector import fit

    started = time.perf_counter()
    model = fit(normals, method=method)
    fit_seconds = time.perf_counter() - started
    model.detect(scored[0])  # warm-up: first allocations, the ONNX session
    rates = {1: (0.0, 0.0), 2: (0.0, 0.0)}
    for _ in range(RUNS):
        for threads, (detect, decode) in rates.items():
            rates[threads] = (max(detect, rate(model.detect, scored, threads)),
                              max(decode, rate(decode_only, scored, threads)))
    for threads, (detect, decode) in rates.items():
        detail = (f"{len(scored)} images, fitted on {len(normals)} normals in {fit_seconds:.1f} s"
                  if threads == 1 else f"{detect / rates[1][0]:.2f}x one thread")
        report(Figure(f"detect {kind} {method} {threads}T", detect, "img/s", decode, f"decode {threads}T",
                      detect / decode, detail=detail), figures)


def decode_only(data: bytes) -> None:
    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        image.load()


def rate(work: Callable[[bytes], object], items: Sequence[bytes], threads: int) -> float:
    started = time.perf_counter()
    if threads == 1:
        for item in items:
            work(item)
    else:
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(work, items))
    return len(items) / (time.perf_counter() - started)


# --- main -----------------------------------------------------------------------------------------

def load() -> str:
    """The 1-minute load average: on a shared 2-core machine, read the figures with it."""
    return f"{os.getloadavg()[0]:.1f}"


def summary(figures: list[Figure], elapsed: float) -> bool:
    goals = [f for f in figures if f.met is not None]
    missed = [f.name for f in goals if not f.met]
    print(f"\nsummary: {len(figures)} figures, {len(goals) - len(missed)} of {len(goals)} goals met"
          + (f" (not met: {', '.join(missed)})" if missed else "") + f", {elapsed:.0f} s", flush=True)
    return not missed


def markdown(figures: list[Figure]) -> str:
    rows = ["| figure | value | baseline | ratio | goal |", "|---|---|---|---|---|"]
    for f in figures:
        baseline = f"{_num(f.baseline)} {f.unit} ({f.baseline_name})" if f.baseline is not None else ""
        ratio = f"{f.ratio:.3f}" if f.ratio is not None else ""
        goal = f"{f.goal}: {'met' if f.met else '**not met**'}" if f.goal else ""
        rows.append(f"| {f.name} | {_num(f.value)} {f.unit} | {baseline} | {ratio} | {goal} |")
    return "\n".join(rows) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small counts (seconds, not minutes)")
    parser.add_argument("--only", default=",".join(SECTIONS), help=f"comma-separated: {', '.join(SECTIONS)}")
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--markdown", type=Path, help="also write the figures as a markdown table here")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (logs, journals)")
    args = parser.parse_args(argv)
    chosen = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = set(chosen) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown section {sorted(unknown)[0]}; choose from {', '.join(SECTIONS)}")
    sizes = QUICK if args.quick else Sizes()
    os.environ.update(CREDENTIALS)  # moto accepts any credentials; boto3 wants some
    work = Path(tempfile.mkdtemp(prefix="batchsight-bench-edge-"))
    print(f"bench/edge.py ({'quick' if args.quick else 'full'}; {os.cpu_count()} cores, load "
          f"{load()}; work {work})", flush=True)
    figures: list[Figure] = []
    started = time.perf_counter()
    try:
        runners = {"ingest": bench_ingest, "upload": bench_upload, "latency": bench_latency,
                   "memory": bench_memory, "detection": bench_detection}
        for section in chosen:
            section_started = time.perf_counter()
            runners[section](args.data, sizes, work / section, figures)
            print(f"  ({section}: {time.perf_counter() - section_started:.0f} s, load {load()})", flush=True)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    ok = summary(figures, time.perf_counter() - started)
    if args.markdown:
        args.markdown.write_text(markdown(figures))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
