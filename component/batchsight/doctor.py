"""``batchsight doctor``: check everything the component needs, each with a pass or a fix.

Meant for the controls engineer at commissioning: run it with the component's configuration
and read down the list; the first FAIL says what to change.
"""
from __future__ import annotations

import email.utils
import os
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from batchsight.config import Config


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


def _folder(path: Path, what: str) -> Check:
    if not path.is_dir():
        return Check(what, False, f"{path} does not exist: create it and give the component user write access")
    if not os.access(path, os.W_OK):
        return Check(what, False, f"{path} is not writable by this user: fix its owner or mode")
    return Check(what, True, str(path))


# File systems whose files other machines write: inotify reports none of those writes.
NETWORK_FILE_SYSTEMS = frozenset({"nfs", "nfs4", "cifs", "smb3", "smbfs", "9p", "ceph", "glusterfs",
                                  "fuse.sshfs", "davfs", "afs"})
NETWORK_RESCAN_SECONDS = 5.0


def mount_type(path: Path, mountinfo: str) -> str:
    """The file system type of the mount holding path, from /proc/self/mountinfo's text: the
    longest mount point that contains it (fields: id, parent, dev, root, mount point, ...,
    '-', type, source, options; spaces in mount points are written as \\040)."""
    best, found = -1, "unknown"
    for line in mountinfo.splitlines():
        left, _, right = line.partition(" - ")
        fields = left.split()
        if len(fields) < 5 or not right:
            continue
        point = Path(fields[4].replace("\\040", " "))
        if (path == point or point in path.parents) and len(point.parts) > best:
            best, found = len(point.parts), right.split()[0]
    return found


def _drop_folder_events(config: Config, mountinfo: Path = Path("/proc/self/mountinfo")) -> Check:
    """A drop folder on a network mount gets no inotify events for what cameras write there:
    its files are found only by the rescan, which must then be short."""
    folder = config.drop_folder.resolve()
    rescan = config.ingest.rescan_seconds
    try:
        kind = mount_type(folder, mountinfo.read_text())
    except OSError:
        return Check("drop folder events", True, f"file system unknown (no {mountinfo}); a scan every {rescan:g} s")
    if kind not in NETWORK_FILE_SYSTEMS:
        return Check("drop folder events", True, f"{kind}: inotify events, and a scan every {rescan:g} s")
    if rescan > NETWORK_RESCAN_SECONDS:
        return Check("drop folder events", False,
                     f"{folder} is on {kind}, a network mount: inotify does not see what other machines "
                     f"write there, so their files wait up to {rescan:g} s for a scan; set "
                     f"ingest.rescan_seconds to 1 to {NETWORK_RESCAN_SECONDS:g}")
    return Check("drop folder events", True, f"{kind}, a network mount: files found by a scan every {rescan:g} s")


def _journal(config: Config) -> Check:
    if not config.journal_path.exists():
        return Check("journal", True, f"{config.journal_path} will be created on first run")
    try:
        with sqlite3.connect(config.journal_path) as db:
            verdict = db.execute("PRAGMA integrity_check").fetchone()[0]
    except sqlite3.Error as exc:
        return Check("journal", False, f"cannot open {config.journal_path}: {exc}")
    if verdict != "ok":
        return Check("journal", False, f"integrity check says {verdict!r}: stop the component and "
                                       "restore the journal from its -wal file or a backup")
    return Check("journal", True, f"{config.journal_path} passes the integrity check")


def _aws(name: str, call: Callable[[], Any], fix: str) -> Check:
    try:
        call()
    except Exception as exc:  # noqa: BLE001 - every failure is reported, none is fatal here
        return Check(name, False, f"{type(exc).__name__}: {exc}; {fix}")
    return Check(name, True, "reachable")


# AWS refuses a request signed more than 5 minutes off its own clock (RequestTimeTooSkewed):
# to the component that looks like an unreachable cloud.
SIGNATURE_SKEW_SECONDS = 300.0


def clock_offset(date_header: str, local: float) -> float:
    """AWS's clock minus ours in seconds, from an HTTP Date header (whole seconds)."""
    return email.utils.parsedate_to_datetime(date_header).timestamp() - local


def _clock(s3: Any, bucket: str) -> Check:
    """The gateway's clock against AWS's, from the Date header of a call (an error answer has
    one too, so a wrong bucket name does not hide a wrong clock)."""
    from botocore.exceptions import ClientError

    sent = time.time()
    try:
        metadata = s3.head_bucket(Bucket=bucket)["ResponseMetadata"]
    except ClientError as exc:
        metadata = exc.response.get("ResponseMetadata", {})
    except Exception as exc:  # noqa: BLE001 - the bucket checks say what is wrong with the link
        return Check("clock", False, f"could not ask AWS for its time ({type(exc).__name__})")
    date = metadata.get("HTTPHeaders", {}).get("date")
    if not date:
        return Check("clock", False, "AWS's answer carried no Date header to compare with")
    offset = clock_offset(date, (sent + time.time()) / 2)
    detail = f"{abs(offset):.0f} s {'behind' if offset > 0 else 'ahead of'} AWS"
    if abs(offset) > SIGNATURE_SKEW_SECONDS:
        return Check("clock", False, f"{detail}: AWS refuses requests signed over "
                                     f"{SIGNATURE_SKEW_SECONDS / 60:.0f} min off; set the time and keep "
                                     "it with NTP (chrony, systemd-timesyncd)")
    return Check("clock", True, detail)


def _broker(config: Config) -> Check:
    """Connect the way the component does (protocol, TLS, credentials), under another client id."""
    from batchsight.wiring import build_publisher

    where = f"{config.mqtt.host}:{config.mqtt.port} (MQTT {config.mqtt.protocol}{', TLS' if config.mqtt.tls else ''})"
    try:
        publisher = build_publisher(config, client_id=f"{config.mqtt_client_id}-doctor", with_will=False)
        publisher.connect()
        deadline = time.monotonic() + 5
        while not publisher.ready and time.monotonic() < deadline:
            time.sleep(0.1)
        connected = publisher.ready
        publisher.close()
    except Exception as exc:  # noqa: BLE001
        return Check("mqtt broker", False, f"{where}: {exc}; check the mqtt.* settings")
    if not connected:
        return Check("mqtt broker", False, f"{where}: no connection within 5 s; check mqtt.host/mqtt.port, "
                                           "the credentials and certificates, and that the broker runs")
    return Check("mqtt broker", True, where)


def _local_detector(config: Config, s3: Any) -> Check:
    """Edge modes: the model the component will serve, or the server it will call, is usable.

    With ``inference.model`` the component starts the server itself, so the check is on what it
    needs (the detector package, the model file or object); otherwise the endpoint must answer.
    """
    import importlib.util
    from urllib.parse import urlsplit

    from batchsight.detector_server import SERVER_MODULE
    from batchsight.local_detector import DetectorUnavailable, LocalDetector

    inference = config.inference
    if inference.model:
        if importlib.util.find_spec(SERVER_MODULE.rsplit(".", 1)[0]) is None:
            return Check("local detector", False, "the detector package is not installed: install "
                                                  "detector/requirements.txt (the recipe does in edge modes)")
        if inference.model.startswith("s3://"):
            url = urlsplit(inference.model)
            return _aws("local detector", lambda: s3.head_object(Bucket=url.netloc, Key=url.path.lstrip("/")),
                        f"check inference.model and that the device may s3:GetObject {inference.model}")
        if not Path(inference.model).is_file():
            return Check("local detector", False, f"model file {inference.model} does not exist: deploy it "
                                                  "(batchsight fit writes one) or fix inference.model")
        return Check("local detector", True, f"{inference.model}, served at {inference.endpoint} by the component")
    try:
        LocalDetector(inference.endpoint, timeout=inference.timeout_seconds).check()
    except DetectorUnavailable as exc:
        return Check("local detector", False, f"{exc}; start `batchsight serve --model MODEL` there, or set "
                                              "inference.model so the component serves it (images go to the "
                                              "cloud meanwhile)")
    return Check("local detector", True, f"{inference.endpoint} answers /ping")


def run_checks(config: Config, clients: dict[str, Any]) -> list[Check]:
    import boto3

    s3, sqs, sfn = clients["s3"], clients["sqs"], clients["stepfunctions"]
    credentials = boto3.session.Session().get_credentials()
    return [
        _folder(config.drop_folder, "drop folder"),
        _drop_folder_events(config),
        _folder(config.work_folder, "work folder"),
        _journal(config),
        Check("credentials", credentials is not None,
              "found" if credentials else "no AWS credentials: on Greengrass, depend on TokenExchangeService"),
        _aws("source bucket", lambda: s3.head_bucket(Bucket=config.aws.source_bucket),
             "check aws.source_bucket against the stack output SourceBucketName and the device policy"),
        _aws("final bucket", lambda: s3.head_bucket(Bucket=config.aws.final_bucket),
             "check aws.final_bucket against the stack output FinalBucketName"),
        _clock(s3, config.aws.source_bucket),
        _aws("queue", lambda: sqs.get_queue_attributes(QueueUrl=config.aws.queue_url, AttributeNames=["QueueArn"]),
             "check aws.queue_url against the stack output ImageQueueUrl"),
        _aws("state machine", lambda: sfn.describe_state_machine(stateMachineArn=config.aws.state_machine_arn),
             "check aws.state_machine_arn against the stack output StateMachineArn"),
        _broker(config),
        *([_local_detector(config, s3)] if config.inference.mode != "cloud" else []),
    ]


def report(checks: list[Check]) -> str:
    width = max(len(c.name) for c in checks)
    return "\n".join(f"{'PASS' if c.ok else 'FAIL'}  {c.name:<{width}}  {c.detail}" for c in checks)
