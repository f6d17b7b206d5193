"""``batchsight doctor``: check everything the component needs, each with a pass or a fix.

Meant for the controls engineer at commissioning: run it with the component's configuration
and read down the list; the first FAIL says what to change.
"""
from __future__ import annotations

import logging
import os
import socket
import sqlite3
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from batchsight import doctor_aws
from batchsight.config import Config
from batchsight.config_folders import Folder, folder_state
from batchsight.doctor_checks import Check, Verdict, failed, passed, report, skipped, warned

__all__ = ["Check", "Verdict", "clock_offset", "mount_type", "report", "run_checks", "thing_name_check"]
clock_offset = doctor_aws.clock_offset
BROKER_SECONDS = 5.0


def _folder(path: Path, what: str, setting: str) -> Check:
    state, detail = folder_state(path, setting)
    if state is Folder.READY:
        return passed(what, detail)
    if state is Folder.CREATABLE:
        return warned(what, detail)
    return failed(what, detail)


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
        return passed("drop folder events", f"file system unknown (no {mountinfo}); a scan every {rescan:g} s")
    if kind not in NETWORK_FILE_SYSTEMS:
        return passed("drop folder events", f"{kind}: inotify events, and a scan every {rescan:g} s")
    if rescan > NETWORK_RESCAN_SECONDS:
        return failed("drop folder events",
                      f"{folder} is on {kind}, a network mount: inotify does not see what other machines "
                      f"write there, so their files wait up to {rescan:g} s for a scan; set "
                      f"ingest.rescan_seconds to 1 to {NETWORK_RESCAN_SECONDS:g}")
    return passed("drop folder events", f"{kind}, a network mount: files found by a scan every {rescan:g} s")


def _journal(config: Config) -> Check:
    if not config.journal_path.exists():
        return passed("journal", f"{config.journal_path} will be created on first run")
    try:
        with sqlite3.connect(config.journal_path) as db:
            verdict = db.execute("PRAGMA integrity_check").fetchone()[0]
    except sqlite3.Error as exc:
        return failed("journal", f"cannot open {config.journal_path}: {exc}; restore it from a backup, or move "
                                 "it away to start an empty one (its images are then not tracked)")
    if verdict != "ok":
        return failed("journal", f"integrity check says {verdict!r}: stop the component and "
                                 "restore the journal from its -wal file or a backup")
    return passed("journal", f"{config.journal_path} passes the integrity check")


class _BrokerErrors(logging.Handler):
    """What the MQTT client says about a failed connection (its log, kept off doctor's output)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.errors: list[str] = []
        self.arrived = threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        error = getattr(record, "error", None)
        if error:
            self.errors.append(str(error))
            self.arrived.set()


def _tcp(host: str, port: int) -> str | None:
    """Why nothing answers at host:port, or None when something does."""
    try:
        socket.create_connection((host, port), timeout=BROKER_SECONDS).close()
    except socket.gaierror:
        return f"the name {host} does not resolve: fix mqtt.host (or the gateway's DNS)"
    except ConnectionRefusedError:
        return "connection refused, nothing listens there: start the broker, or fix mqtt.host and mqtt.port"
    except TimeoutError:
        return (f"no answer within {BROKER_SECONDS:g} s (a firewall drops it, or the host is wrong): check "
                "mqtt.host and mqtt.port")
    except OSError as exc:
        return f"{exc.strerror or exc}: check mqtt.host, mqtt.port and the network"
    return None


def _broker(config: Config, *, on_greengrass_ipc: bool) -> Check:
    """Reach the broker, then connect the way the component does (protocol, TLS, credentials)
    under another client id."""
    from batchsight.wiring import build_publisher

    if on_greengrass_ipc:
        return skipped("mqtt broker", "on Greengrass the component publishes on local pub/sub (the MQTT "
                                      "bridge carries it to the plant's broker)")
    where = f"{config.mqtt.host}:{config.mqtt.port} (MQTT {config.mqtt.protocol}{', TLS' if config.mqtt.tls else ''})"
    unreachable = _tcp(config.mqtt.host, config.mqtt.port)
    if unreachable:
        return failed("mqtt broker", f"{where}: {unreachable}")
    errors = _BrokerErrors()
    client_log = logging.getLogger("batchsight.publishers.mqtt")
    client_log.addHandler(errors)
    try:
        publisher = build_publisher(config, client_id=f"{config.mqtt_client_id}-doctor", with_will=False)
        publisher.connect()
        deadline = time.monotonic() + BROKER_SECONDS
        while not publisher.ready and not errors.arrived.is_set() and time.monotonic() < deadline:
            time.sleep(0.1)
        connected = publisher.ready
        publisher.close()
    except Exception as exc:  # noqa: BLE001
        return failed("mqtt broker", f"{where}: {exc}; check the mqtt.* settings")
    finally:
        client_log.removeHandler(errors)
    if not connected:
        said = f" ({errors.errors[0]})" if errors.errors else f" within {BROKER_SECONDS:g} s"
        return failed("mqtt broker", f"{where}: the broker takes connections but no MQTT session{said}: check "
                                     "mqtt.protocol (some brokers speak only 3.1.1), mqtt.tls and its files, and "
                                     "mqtt.username and the password")
    if (config.mqtt.password or config.mqtt.password_file) and not config.mqtt.tls:
        return warned("mqtt broker", f"{where}: connected, but the password goes over the network in clear text: "
                                     "set mqtt.tls (and the broker's TLS port) on a network others share")
    return passed("mqtt broker", where)


def _local_detector(config: Config, resources: doctor_aws.Resources) -> Check:
    """Edge modes: the model the component will serve, or the server it will call, is usable.

    With ``inference.model`` the component starts the server itself, so the check is on what it
    needs (the detector package, the model file or object); otherwise the endpoint must answer.
    """
    import importlib.util
    from urllib.parse import urlsplit

    from batchsight.detector_server import SERVER_MODULE
    from batchsight.local_detector import DetectorUnavailable, LocalDetector
    from batchsight.model_package import PACKAGE_FILE, ModelRefused, ModelUnavailable, is_package, prepare

    inference = config.inference
    if inference.model:
        if importlib.util.find_spec(SERVER_MODULE.rsplit(".", 1)[0]) is None:
            return failed("local detector", "the detector package is not installed: install "
                                            "detector/requirements.txt (the recipe does in edge modes)")
        if inference.model.startswith("s3://"):
            url = urlsplit(inference.model)
            key = url.path.lstrip("/")
            if is_package(inference.model) and not key.endswith(PACKAGE_FILE):
                key += PACKAGE_FILE  # a package: its package.json is read first
            return resources.check("local detector", "s3",
                                   lambda s3: s3.head_object(Bucket=url.netloc, Key=key),
                                   setting="inference.model", output=f"check inference.model and that the device "
                                                                     f"may s3:GetObject s3://{url.netloc}/{key}",
                                   shown=f"{inference.model}, served at {inference.endpoint} by the component")
        if is_package(inference.model):
            try:
                model = prepare(inference.model, s3=None, models_folder=config.models_folder)
            except (ModelRefused, ModelUnavailable) as exc:
                return failed("local detector", str(exc))
            return passed("local detector", f"{model.identity} ({model.path}, its SHA-256 checked), served by "
                                            "the component")
        if not Path(inference.model).is_file():
            return failed("local detector", f"model file {inference.model} does not exist: deploy it "
                                            "(batchsight fit writes one) or fix inference.model")
        return passed("local detector", f"{inference.model}, served at {inference.endpoint} by the component")
    try:
        LocalDetector(inference.endpoint, timeout=inference.timeout_seconds).check()
    except DetectorUnavailable as exc:
        return failed("local detector", f"{exc}; start `batchsight serve --model MODEL` there, or set "
                                        "inference.model so the component serves it (images go to the "
                                        "cloud meanwhile)")
    return passed("local detector", f"{inference.endpoint} answers /ping")


def thing_name_check(config: Config, environ: Mapping[str, str] = os.environ) -> Check:
    """On Greengrass the device id must be the core device's thing name: the stack's
    EdgeDevicePolicy lets a gateway reach only the S3 prefixes of its ``credentials-iot:ThingName``,
    so any other device id uploads, lists and labels where it may not (AccessDenied on every call)."""
    thing = environ.get("AWS_IOT_THING_NAME", "")
    if not thing:
        return passed("device id", f"{config.device} (no AWS_IOT_THING_NAME: off Greengrass any id will do; on "
                                   "a device run doctor in the component's environment to compare it with the thing "
                                   "name)")
    if config.device != thing:
        return failed("device id", f"device {config.device!r} is not this core device's thing name {thing!r}: set "
                                   f"device: {thing} (the stack's EdgeDevicePolicy lets a gateway use only the S3 "
                                   "prefixes named by its thing name)")
    if thing.isdigit():
        return failed("device id", f"the thing name {thing!r} is only digits, so the EdgeDevicePolicy's prefixes "
                                   "(incoming/*/*/{thing name}/*) also match the date levels of other devices' keys: "
                                   "give the core device a thing name with a letter in it, and the same device id")
    return passed("device id", f"{thing}, this core device's thing name")


def run_checks(config: Config, clients: dict[str, Any], *, greengrass: bool = False,
               greengrass_ipc: bool = False) -> list[Check]:
    """Every check, causes before what they break. ``greengrass``: the gateway runs under
    Greengrass (credentials come from its token exchange service); ``greengrass_ipc``: its
    nucleus answered, so alerts go on local pub/sub rather than to a broker of the config's."""
    drop = _folder(config.drop_folder, "drop folder", "drop_folder")
    work = _folder(config.work_folder, "work folder", "work_folder")
    link = doctor_aws.probe(config, clients)
    clock = doctor_aws.clock_check(link)
    credentials = doctor_aws.credentials_check(config, clients, greengrass=greengrass)
    identity = thing_name_check(config)
    resources = doctor_aws.Resources(config, clients, link, clock_ok=clock.ok,
                                     blocker=None if credentials.ok else "no usable credentials (see credentials)")
    return [
        drop,
        _drop_folder_events(config) if drop.ok else skipped("drop folder events", "the drop folder is unusable"),
        work,
        _journal(config) if work.ok else skipped("journal", "the work folder is unusable"),
        doctor_aws.endpoints_check(config, link),
        clock,
        credentials,
        identity,
        *doctor_aws.resource_checks(resources, identity),
        _broker(config, on_greengrass_ipc=greengrass_ipc),
        *([_local_detector(config, resources)] if config.inference.mode != "cloud" else []),
    ]
