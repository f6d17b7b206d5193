"""Upload: ``CloudLink.submit`` of one journaled batch against s3transfer doing the same AWS work.

Ours uploads the batch's images to S3 with their journal records, sends the messages with
SendMessageBatch and starts the execution. The baseline is s3transfer's TransferManager
uploading the same files into the same emulator at the same concurrency with the same checksum
algorithm (SHA-256), followed by the same SQS and Step Functions calls. moto server runs in
its own process, so the emulator does not share our GIL. Rounds alternate between the two
sides, so drift hits both alike; the best of each is reported. Goal: at most 1.15x, for the
whole batch and for the S3 part alone.
"""
from __future__ import annotations

import contextlib
import inspect
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from batchsight.cloud_link import CloudLink
from batchsight.config import Config, config_from_dict
from batchsight.journal import ImageState, Journal
from batchsight.runtime import aws_clients
from batchsight_tools.bench.edge.component import component_logging, journal_quickly
from batchsight_tools.bench.edge.figures import Figure, Figures
from batchsight_tools.bench.edge.inputs import edge_settings, replicate, shared_images
from batchsight_tools.bench.edge.sizes import Sizes
from batchsight_tools.localcloud.stack import free_port

UPLOAD_MAX_RATIO = 1.15
# The component's default, read from its signature so that the baseline follows any change.
UPLOAD_CONCURRENCY: int = inspect.signature(CloudLink).parameters["upload_concurrency"].default


@dataclass
class UploadRun:
    total: float        # the whole batch: uploads, messages, execution start (and our journal)
    uploads: float      # from the start until the last PutObject answered


@dataclass
class SubmittedBatch:
    batch_id: str
    files: list[tuple[Path, str]]     # spooled file, source key
    messages: list[str]               # the SQS bodies submit sent, to send the same in the baseline


class PutClock:
    """Records when the last PutObject answered, whoever made it (ours or s3transfer)."""

    def __init__(self, s3: Any) -> None:
        self.last = 0.0
        s3.meta.events.register("after-call.s3.PutObject", self._answered)

    def _answered(self, **_: Any) -> None:
        self.last = max(self.last, time.perf_counter())


def bench_upload(data: Path, sizes: Sizes, work: Path, figures: Figures) -> None:
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
    best, best_baseline = min(ours, key=lambda r: r.total), min(baseline, key=lambda r: r.total)
    megabytes = sum(p.stat().st_size for p in sources) / 1e6
    detail = (f"{sizes.upload} casting JPEGs, {megabytes:.0f} MB, S3 concurrency {UPLOAD_CONCURRENCY}, SHA-256 "
              f"checksums, best of {sizes.upload_rounds}; baseline = s3transfer, then the same "
              f"SendMessageBatch calls and StartExecution")
    figures.add(Figure("upload batch (submit)", best.total, "s", best_baseline.total, "s3transfer+enqueue+start",
                       best.total / best_baseline.total, f"<= {UPLOAD_MAX_RATIO}x",
                       best.total / best_baseline.total <= UPLOAD_MAX_RATIO, detail))
    uploads, baseline_uploads = min(r.uploads for r in ours), min(r.uploads for r in baseline)
    figures.add(Figure("upload S3 part", uploads, "s", baseline_uploads, "s3transfer", uploads / baseline_uploads,
                       f"<= {UPLOAD_MAX_RATIO}x", uploads / baseline_uploads <= UPLOAD_MAX_RATIO,
                       "start to the last PutObject answer, best of the same runs; ours includes its "
                       "journal records"))


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

    transfer = TransferConfig(max_concurrency=UPLOAD_CONCURRENCY, preferred_transfer_client="classic")
    with create_transfer_manager(s3, transfer) as manager:
        futures = [manager.upload(str(path), config.aws.source_bucket, f"{prefix}/{key}",
                                  extra_args={"ContentType": "image/jpeg", "ChecksumAlgorithm": "SHA256",
                                              "Metadata": {"file-name": path.name, "device": config.device}})
                   for path, key in files]
        for future in futures:
            future.result()
