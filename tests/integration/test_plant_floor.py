"""The plant floor against the real edge process: a PLC (an asyncua client over a Basic256Sha256
channel, logged in) subscribed to ResultReady events and reading the handshake tags, and a
Sparkplug B host on mosquitto, while the component judges images at the edge and while results
come back from the local cloud; part ids from the file names in every one of them."""
from __future__ import annotations

import asyncio
import json
import signal
from pathlib import Path
from typing import Any

import pytest
import yaml
from asyncua import Client

from batchsight_tools.localcloud.stack import free_port
from batchsight_tools.synth import generate
from tests.edge_process import DEVICE, LINE, SITE, Edge, edit_config, write_config
from tests.gateway.opcua_support import ClientCert, client_certificate, plc
from tests.gateway.sparkplug_support import Scada
from tests.support import CloudFixture, wait_for

pytestmark = pytest.mark.integration
NS = f"urn:batchsight:{SITE}:{LINE}:{DEVICE}"
HS = "VisionSystem.PlcHandshake"


def plant_config(tmp: Path, cloud: CloudFixture, broker_port: int, port: int, cert: ClientCert,
                 **inference: Any) -> Path:
    path = write_config(tmp, cloud, broker_port)
    data = yaml.safe_load(path.read_text())
    pki = tmp / "pki"
    (pki / "trusted").mkdir(parents=True)
    (pki / "trusted" / cert.cert.name).write_bytes(cert.cert.read_bytes())
    (tmp / "users.txt").write_text("plc:s3cret\n")
    data.update(opcua={"enabled": True, "endpoint": f"opc.tcp://127.0.0.1:{port}/batchsight",
                       "users_file": str(tmp / "users.txt"), "pki_folder": str(pki)},
                sparkplug={"enabled": True}, part={"file_pattern": r"(?P<lot>LOT\d+)_(?P<part_id>P\d+)"})
    if inference:
        data["inference"] = {"endpoint": f"http://127.0.0.1:{free_port()}", "retry_seconds": 1.0, **inference}
    path.write_text(yaml.safe_dump(data))
    return path


class Events:
    def __init__(self) -> None:
        self.received: list[Any] = []

    def event_notification(self, event: Any) -> None:
        self.received.append(event)


async def connected(endpoint: str, cert: ClientCert, timeout: float = 60) -> Any:
    """The PLC's session, once the component's server is up."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        try:
            session = plc(endpoint, cert)
            client: Client = await session.__aenter__()
            return session, client
        except (OSError, TimeoutError):
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.5)


async def watch(endpoint: str, cert: ClientCert, drop: Path, frames: list[Any], timeout: float,
                lot: str) -> dict[str, Any]:
    """Subscribe to ResultReady, drop the frames, and read the handshake once every result came."""
    session, client = await connected(endpoint, cert)
    try:
        index = await client.get_namespace_index(NS)
        events = Events()
        subscription = await client.create_subscription(100, events)
        event_type = await client.nodes.base_event_type.get_child(f"{index}:ResultReadyEventType")
        await subscription.subscribe_events(client.get_node(f"ns={index};s=VisionSystem"), event_type)
        drop.mkdir(exist_ok=True)
        for n, frame in enumerate(frames):
            (drop / f"{lot}_P{n:04d}.png").write_bytes(frame.path.read_bytes())
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while len(events.received) < len(frames) and loop.time() < deadline:
            await asyncio.sleep(0.2)

        async def tag(name: str) -> Any:
            return await client.get_node(f"ns={index};s={HS}.{name}").read_value()

        return {"events": events.received, "counter": await tag("ResultReady"), "ready": await tag("Ready"),
                "ng": await tag("LastResultNG"), "part": await tag("LastPartId"), "total": await tag("Shift.Total")}
    finally:
        await session.__aexit__(None, None, None)


def check(seen: dict[str, Any], frames: list[Any], scada: Scada, lot: str) -> None:
    parts = sorted(e.PartId for e in seen["events"])
    assert parts == [f"P{n:04d}" for n in range(len(frames))], "one ResultReady event per image, with its part"
    assert {e.Lot for e in seen["events"]} == {lot}
    assert seen["counter"] == len(frames) and seen["total"] == len(frames) and seen["ready"] is True
    last = seen["events"][-1]
    assert seen["part"] == last.PartId and seen["ng"] is (last.ResultEvaluation == 2)
    wait_for(lambda: len(scada.of("DDATA")) == len(frames), 30, "a DDATA per result")
    assert sorted(d.metrics["Result/PartId"] for d in scada.of("DDATA")) == parts


def test_a_plc_and_scada_follow_edge_judgements_and_see_the_node_die(
        local_cloud: CloudFixture, mqtt_broker: Any, tmp_path: Path, fitted_model: Path) -> None:
    cert = client_certificate(tmp_path / "plc")
    port = free_port()
    frames = generate(tmp_path / "camera", count=6, size=128, seed=71, anomaly_rate=0.5)
    scada = Scada(mqtt_broker.port, SITE, f"{LINE}-{DEVICE}")
    edge = Edge(plant_config(tmp_path, local_cloud, mqtt_broker.port, port, cert, mode="edge",
                             model=str(fitted_model)), tmp_path / "edge.log")
    try:
        seen = asyncio.run(watch(f"opc.tcp://127.0.0.1:{port}/batchsight", cert, tmp_path / "drop", frames, 90,
                                 "LOT7"))
        check(seen, frames, scada, "LOT7")
        assert {e.JudgedBy for e in seen["events"]} == {"edge"}
        assert "NBIRTH" in scada.kinds() and "DBIRTH" in scada.kinds()
        edge.process.send_signal(signal.SIGKILL)
        edge.process.wait(10)
        wait_for(lambda: "NDEATH" in scada.kinds(), 60, "the broker's NDEATH for the killed component")
        assert scada.of("NDEATH")[-1].metrics["bdSeq"] == scada.of("NBIRTH")[-1].metrics["bdSeq"]
    finally:
        if edge.process.poll() is None:
            edge.stop()
        scada.close()


def test_results_from_the_cloud_reach_the_plc_with_their_parts(
        local_cloud: CloudFixture, mqtt_broker: Any, tmp_path: Path) -> None:
    cert = client_certificate(tmp_path / "plc")
    port = free_port()
    frames = generate(tmp_path / "camera", count=4, size=128, seed=72, anomaly_rate=0.5)
    scada = Scada(mqtt_broker.port, SITE, f"{LINE}-{DEVICE}")
    edge = Edge(plant_config(tmp_path, local_cloud, mqtt_broker.port, port, cert), tmp_path / "edge.log")
    try:
        seen = asyncio.run(watch(f"opc.tcp://127.0.0.1:{port}/batchsight", cert, tmp_path / "drop", frames, 180,
                                 "LOT8"))
        check(seen, frames, scada, "LOT8")
        assert {e.JudgedBy for e in seen["events"]} == {"cloud"}
        assert edge.stop() == 0
        wait_for(lambda: "NDEATH" in scada.kinds(), 30, "the NDEATH of a clean stop")
    finally:
        if edge.process.poll() is None:
            edge.stop()
        scada.close()
    s3 = local_cloud.client("s3")
    final = local_cloud.outputs.final_bucket
    documents = [json.loads(s3.get_object(Bucket=final, Key=o["Key"])["Body"].read())
                 for o in s3.list_objects_v2(Bucket=final, Prefix="results/").get("Contents", [])
                 if o["Key"].endswith(".json")]
    ours = [d for d in documents if d.get("lot") == "LOT8"]
    assert sorted(d["part_id"] for d in ours) == sorted(e.PartId for e in seen["events"]), "in the result documents"
    metadata = s3.head_object(Bucket=final, Key=ours[0]["image"]["key"])["Metadata"]
    assert (metadata["part-id"], metadata["lot"]) == (ours[0]["part_id"], "LOT8"), "and on the image in S3"


def test_the_server_is_switched_on_and_moved_by_a_configuration_reload(
        local_cloud: CloudFixture, mqtt_broker: Any, tmp_path: Path) -> None:
    cert = client_certificate(tmp_path / "plc")
    config = plant_config(tmp_path, local_cloud, mqtt_broker.port, free_port(), cert)
    edit_config(config, opcua={"enabled": False}, sparkplug={"enabled": False})
    edge = Edge(config, tmp_path / "edge.log")

    async def read_counter(endpoint: str) -> Any:
        session, client = await connected(endpoint, cert, timeout=30)
        try:
            index = await client.get_namespace_index(NS)
            return await client.get_node(f"ns={index};s={HS}.ResultReady").read_value()
        finally:
            await session.__aexit__(None, None, None)

    try:
        wait_for(lambda: "batchsight running" in (tmp_path / "edge.log").read_text(), 60, "the component running")
        for port in (free_port(), free_port()):
            endpoint = f"opc.tcp://127.0.0.1:{port}/batchsight"
            edit_config(config, opcua={"enabled": True, "endpoint": endpoint})
            edge.reload()
            assert asyncio.run(read_counter(endpoint)) == 0
    finally:
        assert edge.stop() == 0
    log = (tmp_path / "edge.log").read_text()
    assert log.count("OPC UA server listening") == 2 and log.count("OPC UA server stopped") == 2
