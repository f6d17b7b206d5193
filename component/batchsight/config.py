"""The component's configuration: one validated model, from a YAML file or Greengrass.

Every setting has a default except the cloud resources. A wrong value stops the program
with an error naming the setting; the program never guesses.
"""
from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from croniter import croniter

from batchsight import topics
from batchsight.config_aws import check_aws, check_result_queue
from batchsight.config_parse import ConfigError as ConfigError
from batchsight.config_parse import build, located, read_yaml
from batchsight.config_plant import OpcUaSettings, PartSettings, SparkplugSettings, check_plant_floor

_SEGMENT = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_TOPIC_FORBIDDEN = ("+", "#", "\0")  # MQTT wildcards and NUL make every topic we publish invalid


@dataclass(frozen=True)
class AwsSettings:
    region: str = "us-east-1"
    source_bucket: str = ""
    final_bucket: str = ""
    queue_url: str = ""
    state_machine_arn: str = ""
    endpoint_url: str = ""
    result_queue_prefix: str = ""  # stack output ResultQueuePrefix: results are pushed to {prefix}-{device}
    model: str = "default"  # the stack's model route judging this line's images; queue_url is that route's queue

    @property
    def uploads_to_final(self) -> bool:
        """The stack's ImageUpload=final-bucket: its output SourceBucketName names the final bucket,
        so images go straight to their place next to their result (cloud_link.source_key)."""
        return self.source_bucket == self.final_bucket


@dataclass(frozen=True)
class BatchSettings:
    interval_seconds: float = 3600.0
    max_images: int = 500
    max_age_seconds: float = 900.0
    schedule: str = ""
    follow: bool = True


@dataclass(frozen=True)
class IngestSettings:
    stable_seconds: float = 2.0
    rescan_seconds: float = 30.0   # also look for files no event announced, this often
    subfolders: bool = True        # also take files in subfolders (per camera, per day) of the drop folder
    max_bytes: int = 6 * 1024 * 1024
    min_side: int = 64
    max_side: int = 4096


@dataclass(frozen=True)
class ResultSettings:
    poll_seconds: float = 10.0
    timeout_seconds: float = 7200.0
    push: bool = True              # receive results on our own SQS queue (push_receiver.py); list only as fallback
    fallback_seconds: float = 120.0  # with push: list for an image's result after this long without it

    def queue_name(self, aws: AwsSettings, device: str) -> str:
        """The queue results are pushed to; empty when push is off or the stack's prefix unknown."""
        return f"{aws.result_queue_prefix}-{device}" if self.push and aws.result_queue_prefix else ""


@dataclass(frozen=True)
class MqttSettings:
    host: str = "127.0.0.1"
    port: int = 1883
    client_id: str = ""
    topic_prefix: str = "factory"
    protocol: str = "5"            # "5" or "3.1.1" (many PLC gateways speak only 3.1.1)
    keepalive_seconds: int = 30
    tls: bool = False
    ca_file: str = ""              # PEM CA bundle to trust; empty: the system's trust store
    cert_file: str = ""            # client certificate (PEM) for brokers requiring mutual TLS
    key_file: str = ""             # its private key (PEM)
    username: str = ""
    password: str = field(default="", repr=False)  # never logged; prefer password_file
    password_file: str = ""        # file holding the password (wins over password)
    topic_layout: str = "prefix"   # prefix | isa95 (topics.py): {prefix}/{site}/{area}/{line}/{cell}/inspection/...
    area: str = ""                 # isa95: the area level
    cell: str = ""                 # isa95: the work cell level; empty: the device id

    def read_password(self) -> str:
        """The password to send: password_file's first line when set, else password."""
        if self.password_file:
            lines = Path(self.password_file).read_text(encoding="utf-8").splitlines()
            return lines[0] if lines else ""
        return self.password


@dataclass(frozen=True)
class AlertSettings:
    min_confidence: float = 0.0
    # Segmentation models: "name:min_area,..." (e.g. "crack:0,scratch:0.5"); empty = any anomaly.
    anomaly_rules: str = ""

    def rules(self) -> dict[str, float]:
        """The parsed rules; _check has validated the text already."""
        pairs = (rule.split(":") for rule in self.anomaly_rules.split(",") if rule.strip())
        return {name.strip(): float(area) for name, area in pairs}


@dataclass(frozen=True)
class RetentionSettings:
    after_result: str = "delete"
    journal_days: float = 30.0
    # Alerts judged at the edge only are kept this long after their result, so an operator's answer
    # can take the image to the final bucket as a training label (feedback.py); 0: not kept.
    feedback_hours: float = 24.0


@dataclass(frozen=True)
class DiskSettings:
    quota_bytes: int = 2 * 1024 ** 3
    min_free_bytes: int = 256 * 1024 ** 2


INFERENCE_MODES = ("cloud", "edge", "edge-first")


@dataclass(frozen=True)
class InferenceSettings:
    """Where images are judged (see edge_judge.py): the cloud batch, the local detector, or both."""

    mode: str = "cloud"            # cloud | edge | edge-first
    endpoint: str = "http://127.0.0.1:8080"  # the local detector (`batchsight serve`): /ping, /invocations
    model: str = ""                # a model package (s3://bucket/models/NAME/VERSION/ or a folder) or model file
    shadow_model: str = ""         # edge modes: a second package judging every image beside it, compared only
    shadow_report_every: int = 100  # shadow figures on .../inspection/shadow every this many images (and each minute)
    uncertain_low: float = 0.3     # edge-first: local anomaly probability in [low, high] also goes to the cloud
    uncertain_high: float = 0.7
    audit_fraction: float = 0.0    # edge-first: this share of the other images also goes to the cloud
    timeout_seconds: float = 5.0   # one local detection; slower counts as a detector failure
    retry_seconds: float = 30.0    # how often an unhealthy detector is checked again


@dataclass(frozen=True)
class Config:
    site: str = "plant1"
    line: str = "line1"
    device: str = "gateway1"
    drop_folder: Path = Path("/var/lib/batchsight/drop")
    work_folder: Path = Path("/var/lib/batchsight/work")
    aws: AwsSettings = field(default_factory=AwsSettings)
    batch: BatchSettings = field(default_factory=BatchSettings)
    ingest: IngestSettings = field(default_factory=IngestSettings)
    results: ResultSettings = field(default_factory=ResultSettings)
    mqtt: MqttSettings = field(default_factory=MqttSettings)
    alerts: AlertSettings = field(default_factory=AlertSettings)
    retention: RetentionSettings = field(default_factory=RetentionSettings)
    disk: DiskSettings = field(default_factory=DiskSettings)
    inference: InferenceSettings = field(default_factory=InferenceSettings)
    opcua: OpcUaSettings = field(default_factory=OpcUaSettings)
    sparkplug: SparkplugSettings = field(default_factory=SparkplugSettings)
    part: PartSettings = field(default_factory=PartSettings)
    log_level: str = "INFO"

    @property
    def journal_path(self) -> Path:
        return self.work_folder / "journal.sqlite3"

    @property
    def status_path(self) -> Path:
        """The running component's last status, for ``batchsight status`` (status_file.py)."""
        return self.work_folder / "status.json"

    @property
    def quarantine_folder(self) -> Path:
        return self.work_folder / "quarantine"

    @property
    def models_folder(self) -> Path:
        return self.work_folder / "models"

    @property
    def archive_folder(self) -> Path:
        return self.work_folder / "archive"

    @property
    def held_folder(self) -> Path:
        """Alerts judged at the edge, kept retention.feedback_hours for an operator's answer."""
        return self.work_folder / "held"

    @property
    def feedback_folder(self) -> Path:
        """Images of answered edge alerts, until their label and image are in the final bucket."""
        return self.work_folder / "feedback"

    @property
    def mqtt_client_id(self) -> str:
        return self.mqtt.client_id or f"batchsight-{self.device}"

    def topic(self, kind: str) -> str:
        m = self.mqtt
        base = topics.inspection_base(layout=m.topic_layout, prefix=m.topic_prefix, site=self.site, line=self.line,
                                      device=self.device, area=m.area, cell=m.cell)
        return f"{base}/{kind}"


def _float_settings(obj: Any, prefix: str = "") -> Iterator[tuple[str, float]]:
    """Every float leaf with its dotted name, so no float setting escapes the finiteness check."""
    for f in fields(obj):
        value = getattr(obj, f.name)
        if is_dataclass(value):
            yield from _float_settings(value, f"{prefix}{f.name}.")
        elif isinstance(value, float):
            yield prefix + f.name, value


def _check_topic_prefix(prefix: str) -> None:
    """The prefix starts every topic we publish, so it must be a valid, wildcard-free topic level."""
    if not prefix:
        raise ConfigError("setting mqtt.topic_prefix: must not be empty")
    if any(c in prefix for c in _TOPIC_FORBIDDEN):
        raise ConfigError("setting mqtt.topic_prefix: must not contain '+', '#' or NUL")
    if prefix.startswith("/") or prefix.endswith("/"):
        raise ConfigError("setting mqtt.topic_prefix: must not start or end with '/'")


def _check_mqtt(mqtt: MqttSettings) -> None:
    if mqtt.protocol not in ("5", "3.1.1"):
        raise ConfigError(f"setting mqtt.protocol: must be \"5\" or \"3.1.1\" (quoted), got {mqtt.protocol!r}")
    if not 5 <= mqtt.keepalive_seconds <= 65535:
        raise ConfigError(f"setting mqtt.keepalive_seconds: must be 5 to 65535, got {mqtt.keepalive_seconds}")
    files = {"mqtt.ca_file": mqtt.ca_file, "mqtt.cert_file": mqtt.cert_file, "mqtt.key_file": mqtt.key_file}
    if not mqtt.tls:
        given = [name for name, value in files.items() if value]
        if given:
            raise ConfigError(f"setting {given[0]}: only used with mqtt.tls: true")
    elif bool(mqtt.cert_file) != bool(mqtt.key_file):
        missing = "mqtt.key_file" if mqtt.cert_file else "mqtt.cert_file"
        raise ConfigError(f"setting {missing}: a client certificate needs both mqtt.cert_file and mqtt.key_file")
    if mqtt.password_file:
        files["mqtt.password_file"] = mqtt.password_file
    for name, value in files.items():
        if value and not Path(value).is_file():
            raise ConfigError(f"setting {name}: file {value} does not exist")
    if mqtt.password_file:
        try:
            mqtt.read_password()
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"setting mqtt.password_file: cannot read {mqtt.password_file}: {exc}") from exc
    if (mqtt.password or mqtt.password_file) and not mqtt.username and mqtt.protocol == "3.1.1":
        raise ConfigError("setting mqtt.username: MQTT 3.1.1 sends a password only with a username")


def _check_anomaly_rules(text: str) -> None:
    for rule in (r for r in text.split(",") if r.strip()):
        name, _, area = rule.partition(":")
        try:
            ok = bool(name.strip()) and 0.0 <= float(area) <= 100.0
        except ValueError:
            ok = False
        if not ok:
            raise ConfigError(f"setting alerts.anomaly_rules: {rule!r} is not 'name:min_area' "
                              "with an area from 0 to 100, e.g. 'crack:0,scratch:0.5'")


def _check_inference(inference: InferenceSettings) -> None:
    if inference.mode not in INFERENCE_MODES:
        raise ConfigError(f"setting inference.mode: must be one of {', '.join(INFERENCE_MODES)}, "
                          f"got {inference.mode!r}")
    url = urlsplit(inference.endpoint)
    try:
        port = url.port
    except ValueError:
        port = None
        url = url._replace(scheme="")  # an unparseable port: refused just below
    if url.scheme not in ("http", "https") or not url.hostname:
        raise ConfigError(f"setting inference.endpoint: expected a URL like http://127.0.0.1:8080, "
                          f"got {inference.endpoint!r}")
    for name in ("model", "shadow_model"):
        source = getattr(inference, name)
        if source and not source.startswith("s3://") and not Path(source).is_absolute():
            raise ConfigError(f"setting inference.{name}: expected s3://BUCKET/models/NAME/VERSION/ (a model "
                              f"package), an absolute path of a package folder or model file, or s3://bucket/key, "
                              f"got {source!r}")
        if source.startswith("s3://") and not urlsplit(source).netloc:
            raise ConfigError(f"setting inference.{name}: {source!r} names no bucket: write "
                              "s3://BUCKET/models/NAME/VERSION/")
    if inference.shadow_model and not inference.model:
        raise ConfigError("setting inference.shadow_model: a shadow runs beside inference.model; set that too")
    if inference.shadow_report_every < 1:
        raise ConfigError("setting inference.shadow_report_every: must be 1 or more")
    if inference.model and (url.hostname not in ("127.0.0.1", "localhost") or not port):
        raise ConfigError("setting inference.endpoint: with inference.model set, the component serves the "
                          "model itself, so the endpoint must be http://127.0.0.1:PORT")
    if not 0.0 <= inference.uncertain_low <= inference.uncertain_high <= 1.0:
        raise ConfigError("setting inference.uncertain_low: need 0 <= uncertain_low <= uncertain_high <= 1, "
                          f"got {inference.uncertain_low} and {inference.uncertain_high}")
    if not 0.0 <= inference.audit_fraction <= 1.0:
        raise ConfigError("setting inference.audit_fraction: must be between 0 and 1")
    for name in ("timeout_seconds", "retry_seconds"):
        if getattr(inference, name) <= 0:
            raise ConfigError(f"setting inference.{name}: must be greater than 0")


def _check(config: Config) -> None:
    for name, value in _float_settings(config):
        if not math.isfinite(value):  # NaN slips past every comparison below
            raise ConfigError(f"setting {name}: must be a finite number, got {value}")
    for name in ("site", "line", "device"):
        if not _SEGMENT.fullmatch(getattr(config, name)):
            raise ConfigError(f"setting {name}: use 1-64 letters, digits, '.', '_' or '-'")
    check_aws(config.aws)
    positive = {"batch.interval_seconds": config.batch.interval_seconds,
                "batch.max_images": config.batch.max_images,
                "batch.max_age_seconds": config.batch.max_age_seconds,
                "ingest.rescan_seconds": config.ingest.rescan_seconds,
                "ingest.max_bytes": config.ingest.max_bytes,
                "ingest.min_side": config.ingest.min_side,
                "results.poll_seconds": config.results.poll_seconds,
                "results.timeout_seconds": config.results.timeout_seconds,
                "results.fallback_seconds": config.results.fallback_seconds,
                "mqtt.port": config.mqtt.port,
                "retention.journal_days": config.retention.journal_days,
                "disk.quota_bytes": config.disk.quota_bytes}
    for name, value in positive.items():
        if value <= 0:
            raise ConfigError(f"setting {name}: must be greater than 0, got {value}")
    if config.mqtt.port > 65535:
        raise ConfigError(f"setting mqtt.port: must be 1 to 65535, got {config.mqtt.port}")
    check_result_queue(config.results.queue_name(config.aws, config.device))
    _check_topic_prefix(config.mqtt.topic_prefix)
    layout_problem = topics.check_layout(config.mqtt.topic_layout, config.mqtt.area, config.mqtt.cell)
    if layout_problem:
        raise ConfigError(layout_problem)
    _check_mqtt(config.mqtt)
    check_plant_floor(config)
    if config.batch.schedule and not croniter.is_valid(config.batch.schedule):
        raise ConfigError(f"setting batch.schedule: {config.batch.schedule!r} is not a cron expression "
                          "(five fields, UTC, e.g. '0 */2 * * *')")
    if config.disk.min_free_bytes < 0:
        raise ConfigError("setting disk.min_free_bytes: must not be negative")
    if config.ingest.stable_seconds < 0:
        raise ConfigError("setting ingest.stable_seconds: must not be negative")
    if config.ingest.max_side < config.ingest.min_side:
        raise ConfigError("setting ingest.max_side: must be at least ingest.min_side")
    _check_anomaly_rules(config.alerts.anomaly_rules)
    _check_inference(config.inference)
    if not 0.0 <= config.alerts.min_confidence <= 1.0:
        raise ConfigError("setting alerts.min_confidence: must be between 0 and 1")
    if config.retention.feedback_hours < 0:
        raise ConfigError("setting retention.feedback_hours: must not be negative")
    if config.retention.after_result not in ("delete", "archive"):
        raise ConfigError("setting retention.after_result: must be 'delete' or 'archive'")
    if config.log_level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise ConfigError("setting log_level: must be DEBUG, INFO, WARNING or ERROR")
    drop, work = config.drop_folder.resolve(), config.work_folder.resolve()
    if drop == work:
        raise ConfigError("setting work_folder: must differ from drop_folder")
    if config.ingest.subfolders and drop in work.parents:
        raise ConfigError("setting work_folder: must not be inside drop_folder while ingest.subfolders "
                          "is on (its spool would be taken as camera files); move it, or set "
                          "ingest.subfolders: false")


def config_from_dict(data: dict[str, Any]) -> Config:
    """Validate a configuration mapping (from YAML or Greengrass) into a Config."""
    config = build(Config, {} if data is None else data)
    _check(config)
    return config


def load_config(path: Path) -> Config:
    """The configuration in a YAML file; an error names the file and the line of the setting."""
    data, lines = read_yaml(path)
    try:
        return config_from_dict(data)
    except ConfigError as exc:
        raise located(exc, path, lines) from exc
