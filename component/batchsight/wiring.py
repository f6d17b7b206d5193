"""The wiring: the one place that chooses the gateway's adapters and connects its parts.

The edge program is the same code everywhere; only what it talks to differs (DESIGN.md, the
embedded default). On a Greengrass device the configuration comes over IPC (or from the file
the recipe writes, when IPC cannot be reached), alerts go out on Greengrass local pub/sub and
Greengrass hears the lifecycle state; anywhere else the configuration is a YAML file and
alerts go straight to an MQTT broker. The AWS clients (botocore's own retries kept short) and
the local detector (a process of our own when ``inference.model`` names a model, else the
configured endpoint) are made here too, and the plant floor's protocols (the OPC UA server and
the Sparkplug B node, when switched on) are hooked onto the alert path here: around the chosen
publisher and the outbox (publishers/plant.py), never in the loop. Tests hand in fakes for the
adapters (``publisher``, ``clients``); every other part is built the same way in every mode.

runtime.py keeps the loop; it asks ``build`` for its parts, and hands a configuration update
to each of them that takes one (``Parts.reconfigurable``).
"""
from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config as BotoConfig

from batchsight.alerter import Alerter
from batchsight.batcher import BatchPolicy
from batchsight.cloud_link import CloudLink
from batchsight.config import Config, ConfigError, load_config
from batchsight.detector_server import DetectorServer
from batchsight.edge_judge import EdgeJudge
from batchsight.feedback import FeedbackStore
from batchsight.greengrass import GreengrassIpc, load_greengrass_config
from batchsight.housekeeping import DiskGuard, Housekeeper
from batchsight.lost_images import LossCheck
from batchsight.ingest import Ingestor
from batchsight.journal import Journal
from batchsight.live_config import Reconfigurable
from batchsight.local_detector import LocalDetector
from batchsight.part_context import PartJournal
from batchsight.publishers import Publisher
from batchsight.publishers.greengrass import GreengrassPublisher
from batchsight.publishers.mqtt import MqttPublisher, TlsFiles
from batchsight.publishers.plant import ObservedOutbox, PlantFloor, PlantFloorPublisher
from batchsight.push_receiver import ResultReceiver
from batchsight.results import PushState, ResultPuller
from batchsight.shadow import ShadowReporter
from batchsight.verifier import PixelVerifier
from batchsight.watcher import DropFolderWatcher

if TYPE_CHECKING:
    from batchsight.runtime import Component

log = logging.getLogger(__name__)


def configuration(config_file: str | None, *, greengrass: bool = False) -> tuple[Config, GreengrassIpc | None]:
    """The configuration, plus the Greengrass IPC adapter when running on a device (None when the
    nucleus did not answer and the recipe's file stood in for it)."""
    if greengrass:
        return load_greengrass_config(GreengrassIpc())
    if not config_file:
        raise ConfigError("give --config FILE (or --greengrass on a Greengrass device)")
    return load_config(Path(config_file)), None


def aws_clients(config: Config) -> dict[str, Any]:
    session = boto3.session.Session(region_name=config.aws.region)
    # One retry inside botocore, no more: its backoff sleeps in the main loop (up to 15 s per
    # throttled call with 4 retries, stalling ingestion and MQTT); longer stretches are the
    # component's own non-blocking Backoff's (see runtime._cloud_step).
    options: dict[str, Any] = {"config": BotoConfig(retries={"mode": "standard", "total_max_attempts": 2},
                                                    connect_timeout=5, read_timeout=30)}
    if config.aws.endpoint_url:
        options["endpoint_url"] = config.aws.endpoint_url
    return {name: session.client(name, **options) for name in ("s3", "sqs", "stepfunctions")}


def build_publisher(config: Config, *, client_id: str = "", with_will: bool = True) -> MqttPublisher:
    """Off Greengrass: a direct MQTT client (doctor connects with one too, under its own id)."""
    settings = config.mqtt
    password = settings.read_password()
    if password and not settings.tls:
        log.warning("MQTT password sent without TLS; set mqtt.tls on an untrusted network",
                    extra={"broker": f"{settings.host}:{settings.port}"})
    tls = TlsFiles(settings.ca_file, settings.cert_file, settings.key_file) if settings.tls else None
    return MqttPublisher(host=settings.host, port=settings.port, client_id=client_id or config.mqtt_client_id,
                         protocol=settings.protocol, tls=tls, username=settings.username,
                         password=password, keepalive_seconds=settings.keepalive_seconds,
                         will_topic=config.topic("status") if with_will else None,
                         will_payload=b'{"v":1,"state":"offline"}')


def choose_publisher(config: Config, ipc: GreengrassIpc | None) -> Publisher:
    """On a device, Greengrass local pub/sub (its MQTT bridge carries the messages to the plant's
    broker); elsewhere a direct MQTT client."""
    return GreengrassPublisher(ipc) if ipc is not None else build_publisher(config)


@dataclasses.dataclass(frozen=True)
class Parts:
    """Everything the main loop drives, connected to one journal."""

    journal: Journal
    publisher: Publisher
    watcher: DropFolderWatcher
    ingestor: Ingestor
    verifier: PixelVerifier
    policy: BatchPolicy
    link: CloudLink
    puller: ResultPuller
    receiver: ResultReceiver
    alerter: Alerter
    detector_server: DetectorServer
    judge: EdgeJudge
    feedback: FeedbackStore
    disk: DiskGuard
    housekeeper: Housekeeper
    shadow: ShadowReporter

    def reconfigurable(self) -> list[Reconfigurable]:
        """Every part that takes a configuration update, found from the fields themselves: a part
        added above is in, with nothing else to edit."""
        parts = (getattr(self, field.name) for field in dataclasses.fields(self))
        return [part for part in parts if isinstance(part, Reconfigurable)]


def build(config: Config, *, ipc: GreengrassIpc | None = None, publisher: Publisher | None = None,
          clients: dict[str, Any] | None = None, on_validated: Callable[[], None] = lambda: None,
          on_hosted: Callable[[str], None] = lambda _batch_id: None) -> Parts:
    """The parts for ``config``, with the adapters handed in or else the ones for this device.

    ``clients`` maps "s3", "sqs" and "stepfunctions" to boto3 clients (or stand-ins);
    ``on_validated`` is called on the verifier's thread when newly decoded images await judging
    (the event path's judge stage) or batching (the main loop); ``on_hosted``, on the receiver's
    thread, with the batch id of each result pushed and stored, or the execution that announced a
    start of the model: either way the model is hosted now.
    """
    clients = aws_clients(config) if clients is None else clients
    journal = PartJournal(config.journal_path, config)  # each image journaled with its part id and lot
    # The plant floor's protocols (OPC UA server, Sparkplug B node) ride on the alert path: they
    # see each hand-off once it commits, and the status the loop publishes (publishers/plant.py).
    plant = PlantFloor(config, journal)
    publisher = PlantFloorPublisher(config, choose_publisher(config, ipc) if publisher is None else publisher, plant)
    alerter = Alerter(config, journal, publisher, outbox=ObservedOutbox(journal, plant.committed))
    server = DetectorServer(config, s3=clients["s3"])
    detector = LocalDetector(config.inference.endpoint, timeout=config.inference.timeout_seconds)
    push = PushState()  # the receiver says whether results are pushed; the puller lists less while they are
    puller = ResultPuller(config, journal, s3=clients["s3"], push=push)
    return Parts(
        journal=journal, publisher=publisher,
        watcher=DropFolderWatcher(config.drop_folder, config.ingest.stable_seconds, config.ingest.rescan_seconds,
                                  config.ingest.subfolders),
        ingestor=Ingestor(config, journal),
        verifier=PixelVerifier(config, journal, on_validated=on_validated),
        policy=BatchPolicy(config.batch, last_cut=time.time()),
        link=CloudLink(config, journal, s3=clients["s3"], sqs=clients["sqs"], sfn=clients["stepfunctions"]),
        puller=puller, receiver=ResultReceiver(config, puller, push, sqs=clients["sqs"], on_hosted=on_hosted),
        alerter=alerter, detector_server=server,
        judge=EdgeJudge(config, journal, alerter, server=server, detector=detector),
        feedback=FeedbackStore(config, journal, s3=clients["s3"]),
        disk=DiskGuard(config, journal),
        housekeeper=Housekeeper(config, journal, losses=LossCheck(config, s3=clients["s3"])),
        shadow=ShadowReporter(config, journal, publisher))


def run(component: Component, ipc: GreengrassIpc | None) -> None:
    """Run the loop until a signal stops it. On a device, Greengrass's configuration updates go to
    the component (its loop applies them between two ticks), and Greengrass hears RUNNING, or
    ERRORED when the loop fails (it then restarts the component; the journal resumes the work)."""
    if ipc is None:
        component.run()
        return
    ipc.on_configuration_change(component.request_config)
    ipc.report_state("RUNNING")
    try:
        component.run()
    except Exception:
        ipc.report_state("ERRORED")
        raise
