"""Send a batch to the cloud: upload each image, enqueue it, start the batch's execution.

Each step is recorded in the journal after it succeeds and is safe to repeat: the S3 key is
derived from the image's hash (and S3 checks the SHA-256 we send), the messages carry the
image id, and the execution is named by the batch id.
"""
from __future__ import annotations

import base64
import hashlib
import json
import logging
from concurrent.futures import ThreadPoolExecutor, as_completed, wait
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from botocore.exceptions import ClientError

from batchsight.config import Config
from batchsight.journal import ImageRecord, ImageState, Journal
from batchsight.live_config import Configured
from batchsight.quarantine import set_aside
from batchsight.results import result_day_prefix

log = logging.getLogger(__name__)
CONTRACT_VERSION = 1
SEND_BATCH = 10  # SQS SendMessageBatch limit
RECORD_UPLOADS = 10  # finished uploads per journal transaction


def part_metadata(image: ImageRecord) -> dict[str, str]:
    """The part context as object metadata (``part-id``, ``lot``; URL-encoded like the file name),
    only when the image has it."""
    return {name: quote(value) for name, value in (("part-id", image.part_id), ("lot", image.lot)) if value}


def source_key(config: Config, image: ImageRecord) -> str:
    """Where an image is uploaded (contracts: the S3 key layout): the source bucket's incoming/
    prefix, from which the cloud moves it next to its result; or, when the bucket to upload to is
    the final bucket (the stack's ImageUpload=final-bucket), that place next to its result at once,
    so the cloud moves nothing (a COPY per image saved)."""
    if config.aws.uploads_to_final:
        return f"{result_day_prefix(config, image.captured_at)}{image.image_id}.{image.ext}"
    day = datetime.fromisoformat(image.captured_at.replace("Z", "+00:00"))
    return (f"incoming/{config.site}/{config.line}/{config.device}/{day:%Y}/{day:%m}/{day:%d}/"
            f"{image.image_id}.{image.ext}")


class DamagedSpoolFile(RuntimeError):
    """An image's spool file is gone or holds other bytes: it can never be uploaded as journaled."""

    def __init__(self, image: ImageRecord, message: str) -> None:
        super().__init__(message)
        self.image = image


class CloudLink(Configured):
    def __init__(self, config: Config, journal: Journal, *, s3: Any, sqs: Any, sfn: Any,
                 upload_concurrency: int = 4) -> None:
        self.config = config
        self.journal = journal
        self.s3, self.sqs, self.sfn = s3, sqs, sfn
        self.upload_concurrency = upload_concurrency

    def source_key(self, image: ImageRecord) -> str:
        return source_key(self.config, image)

    def submit(self, batch_id: str) -> None:
        """Take the batch as far as it can go; raises on a cloud error (retried by the caller)."""
        images = self.journal.batch_images(batch_id)
        self._upload([i for i in images if i.state is ImageState.VALIDATED])
        self._enqueue(batch_id, [i for i in self.journal.batch_images(batch_id)
                                 if i.state is ImageState.UPLOADED])
        images = self.journal.batch_images(batch_id)  # less any image set aside while uploading
        pending = [i.image_id for i in images if i.state is ImageState.ENQUEUED]
        if pending:
            arn = self._start(batch_id, len(images))
            self.journal.set_execution(batch_id, arn)
            self.journal.advance(pending, ImageState.SUBMITTED)
            log.info("batch submitted", extra={"batch_id": batch_id, "images": len(images),
                                               "execution": arn})

    def _upload(self, images: list[ImageRecord]) -> None:
        """Upload in parallel and record finished uploads RECORD_UPLOADS at a time.

        One journal transaction (one fsync) per group, not per image: on a gateway's flash an
        fsync per image, made by this one thread, can take longer than the upload it records.
        A crash forgets at most one group's records, and those uploads are simply repeated
        (same key, same bytes). On the first failure the uploads not yet started are
        cancelled, so an outage holds the main loop for the uploads in flight, not for the
        whole batch; every upload that did finish is recorded before the error goes up.
        """
        if not images:
            return
        finished: list[str] = []
        recorded = 0
        with ThreadPoolExecutor(max_workers=self.upload_concurrency) as pool:
            futures = [pool.submit(self._put, image) for image in images]
            try:
                for future in as_completed(futures):
                    try:
                        finished.append(future.result().image_id)
                    except DamagedSpoolFile as exc:
                        set_aside(self.config, self.journal, exc.image, str(exc))
                        continue
                    if len(finished) - recorded >= RECORD_UPLOADS:
                        self.journal.advance(finished[recorded:], ImageState.UPLOADED)
                        recorded = len(finished)
            except Exception:
                for future in futures:
                    future.cancel()
                wait(futures)
                self.journal.advance([f.result().image_id for f in futures
                                      if not f.cancelled() and f.exception() is None],
                                     ImageState.UPLOADED)  # repeating a recorded step is a no-op
                raise
        if len(finished) > recorded:
            self.journal.advance(finished[recorded:], ImageState.UPLOADED)

    def _put(self, image: ImageRecord) -> ImageRecord:
        try:
            body = Path(image.path).read_bytes()
        except FileNotFoundError as exc:
            raise DamagedSpoolFile(image, f"spool file {image.path} of image {image.image_id} is gone") from exc
        if hashlib.sha256(body).hexdigest() != image.image_id:
            # S3 would refuse it (BadDigest), emulators may not: never store other bytes under the key
            raise DamagedSpoolFile(image, f"spool file {image.path} no longer holds image {image.image_id} "
                                          "(its bytes changed on disk); not uploaded")
        self.s3.put_object(
            Bucket=self.config.aws.source_bucket, Key=self.source_key(image), Body=body,
            ContentType="image/jpeg" if image.ext == "jpg" else "image/png",
            ChecksumSHA256=base64.b64encode(bytes.fromhex(image.image_id)).decode(),
            Metadata={"file-name": quote(image.file_name), "captured-at": image.captured_at,
                      "device": self.config.device, **part_metadata(image)})
        return image

    def message(self, batch_id: str, image: ImageRecord) -> dict[str, Any]:
        c = self.config
        return {"v": CONTRACT_VERSION, "bucket": c.aws.source_bucket, "key": self.source_key(image),
                "image_id": image.image_id, "site": c.site, "line": c.line, "device": c.device,
                "captured_at": image.captured_at, "batch_id": batch_id, "file_name": image.file_name,
                "part_id": image.part_id or "", "lot": image.lot or ""}

    def _enqueue(self, batch_id: str, images: list[ImageRecord]) -> None:
        for start in range(0, len(images), SEND_BATCH):
            chunk = images[start:start + SEND_BATCH]
            response = self.sqs.send_message_batch(
                QueueUrl=self.config.aws.queue_url,
                Entries=[{"Id": str(n), "MessageBody": json.dumps(self.message(batch_id, image))}
                         for n, image in enumerate(chunk)])
            failed = {int(f["Id"]) for f in response.get("Failed", [])}
            sent = [image.image_id for n, image in enumerate(chunk) if n not in failed]
            self.journal.advance(sent, ImageState.ENQUEUED)
            if failed:
                raise RuntimeError(f"SQS refused {len(failed)} of {len(chunk)} messages; will retry")

    def _start(self, batch_id: str, count: int) -> str:
        execution_input = {"v": CONTRACT_VERSION, "trigger": "edge", "batch_id": batch_id,
                           "site": self.config.site, "line": self.config.line,
                           "device": self.config.device, "image_count": count, "route": self.config.aws.model}
        try:
            response = self.sfn.start_execution(
                stateMachineArn=self.config.aws.state_machine_arn, name=batch_id,
                input=json.dumps(execution_input))
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ExecutionAlreadyExists":
                raise
            arn = self.config.aws.state_machine_arn.replace(":stateMachine:", ":execution:")
            return f"{arn}:{batch_id}"
        return str(response["executionArn"])
