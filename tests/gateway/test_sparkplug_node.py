"""The Sparkplug B edge node on a real mosquitto, read by a Sparkplug consumer that decodes every
payload with Eclipse Tahu's schema: births with the metric set, data per result, rebirth on
request, sequence numbers, NDEATH on a clean stop and (as the MQTT will) when the node is killed."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from batchsight.alerter import Alerter
from batchsight.config import Config, config_from_dict
from batchsight.journal import Journal
from batchsight.publishers.plant import ObservedOutbox
from batchsight.sparkplug.node import DEVICE_METRICS, NODE_METRICS, REBIRTH, SparkplugNode
from batchsight.sparkplug.sparkplug_b_pb2 import DataType
from tests.gateway.opcua_support import AWS, stored_result
from tests.gateway.sparkplug_support import Scada
from tests.gateway.test_outbox import FakeBroker
from tests.support import wait_for

PREFIX = "spBv1.0/plant1/"
NODE = "line-7-gw-1"
METRICS_FILE = Path(__file__).resolve().parents[2] / "contracts" / "schemas" / "sparkplug_metrics.json"


def node_config(tmp: Path, port: int) -> Config:
    return config_from_dict({"site": "plant1", "line": "line-7", "device": "gw-1", "aws": AWS,
                             "drop_folder": str(tmp / "drop"), "work_folder": str(tmp / "work"),
                             "mqtt": {"port": port, "protocol": "3.1.1"}, "sparkplug": {"enabled": True}})


@pytest.fixture
def scada(mqtt_broker: Any) -> Iterator[Scada]:
    host = Scada(mqtt_broker.port, "plant1", NODE)
    yield host
    host.close()


def test_births_data_rebirth_and_death_on_a_clean_stop(tmp_path: Path, mqtt_broker: Any, scada: Scada) -> None:
    config = node_config(tmp_path, mqtt_broker.port)
    node = SparkplugNode(config)
    node.start()
    wait_for(lambda: "DBIRTH" in scada.kinds(), 15, "the births")
    birth = scada.of("NBIRTH")[0]
    assert birth.seq == 0 and birth.metrics["bdSeq"] == 0 and birth.metrics[REBIRTH] is False
    assert set(birth.metrics) == set(NODE_METRICS)
    assert set(scada.of("DBIRTH")[0].metrics) == set(DEVICE_METRICS) and scada.of("DBIRTH")[0].seq == 1

    node.status({"state": "running", "alarms": []})
    wait_for(lambda: len(scada.of("NDATA")) == 1, 15, "the status, once it changed")
    node.status({"state": "running", "alarms": []})
    node.status({"state": "running", "alarms": ["disk full: 3 images wait"], "alarm_codes": [10], "waiting": 3})
    journal = Journal(config.journal_path)
    ids = [stored_result(journal, config, n, anomalous=(n == 1), part_id=f"P{n}", lot="L9") for n in range(2)]
    Alerter(config, journal, FakeBroker(), outbox=ObservedOutbox(journal, node.committed)).hand_off()
    wait_for(lambda: len(scada.of("DDATA")) == 2, 15, "one DDATA per result")
    first, changed = (d.metrics for d in scada.of("NDATA"))  # the same status again sends nothing
    assert first["Status/State"] == "running" and first["Status/Ready"] is True and first["Status/ErrorCode"] == 0
    assert changed == {"Status/Ready": False, "Status/ErrorCode": 10, "Status/ErrorText": "disk full: 3 images wait",
                       "Status/Waiting": 3}, "report by exception: only what changed"
    data = [d.metrics for d in scada.of("DDATA")]
    assert [d["Result/ResultId"] for d in data] == ids
    assert [d["Result/PartId"] for d in data] == ["P0", "P1"] and data[1]["Result/Lot"] == "L9"
    assert [d["Result/Evaluation"] for d in data] == [1, 2] and data[1]["Counters/NG"] == 1
    assert data[1]["Result/Confidence"] == pytest.approx(0.9)
    seqs = [d.seq for _, d in scada.seen if d.seq is not None]
    assert seqs == list(range(len(seqs))), "seq counts every message of the session"

    scada.rebirth()
    wait_for(lambda: len(scada.of("NBIRTH")) == 2, 15, "a rebirth on request")
    again = scada.of("DBIRTH")[1].metrics
    assert again["Result/PartId"] == "P1" and again["Counters/Results"] == 2, "births carry the current values"
    assert scada.of("NBIRTH")[1].seq == 0

    node.stop()
    wait_for(lambda: "NDEATH" in scada.kinds(), 15, "the NDEATH of a clean stop")
    assert scada.of("NDEATH")[0].metrics == {"bdSeq": 0} and scada.of("NDEATH")[0].seq is None
    journal.close()


NODE_SCRIPT = """
import sys, time, yaml
from batchsight.config import config_from_dict
from batchsight.sparkplug.node import SparkplugNode
node = SparkplugNode(config_from_dict(yaml.safe_load(open(sys.argv[1]))))
node.start()
time.sleep(600)
"""


def test_a_killed_node_dies_by_its_will_with_the_bdseq_of_its_birth(tmp_path: Path, mqtt_broker: Any,
                                                                     scada: Scada) -> None:
    config_file = tmp_path / "edge.yaml"
    config_file.write_text(json.dumps({"site": "plant1", "line": "line-7", "device": "gw-1", "aws": AWS,
                                       "drop_folder": str(tmp_path / "drop"), "work_folder": str(tmp_path / "work"),
                                       "mqtt": {"port": mqtt_broker.port, "protocol": "3.1.1"},
                                       "sparkplug": {"enabled": True}}))
    process = subprocess.Popen([sys.executable, "-c", NODE_SCRIPT, str(config_file)])
    try:
        wait_for(lambda: "DBIRTH" in scada.kinds(), 30, "the births")
        process.send_signal(signal.SIGKILL)
        process.wait(10)
        wait_for(lambda: "NDEATH" in scada.kinds(), 30, "the broker's NDEATH for the killed node")
    finally:
        process.kill()
        process.wait()
    assert scada.of("NDEATH")[0].metrics["bdSeq"] == scada.of("NBIRTH")[0].metrics["bdSeq"]


def test_the_metric_set_is_the_one_the_contract_lists() -> None:
    listed = json.loads(METRICS_FILE.read_text())
    names = {**NODE_METRICS, **DEVICE_METRICS}
    assert {name: m["datatype"] for name, m in {**listed["node"], **listed["device"]}.items()} == \
        {name: DataType.Name(kind) for name, kind in names.items()}


def test_a_new_connection_after_a_broker_restart_is_born_with_the_next_bdseq(tmp_path: Path, mqtt_broker: Any,
                                                                              scada: Scada) -> None:
    node = SparkplugNode(node_config(tmp_path, mqtt_broker.port))
    node.start()
    try:
        wait_for(lambda: "NBIRTH" in scada.kinds(), 15, "the first birth")
        mqtt_broker.stop()
        mqtt_broker.start()

        def born_again() -> bool:  # the births of the new connection, or (if the host came back later) a rebirth
            return any(b.metrics["bdSeq"] == 1 for b in scada.of("NBIRTH"))

        wait_for(born_again, 60, "a birth with the next bdSeq", tick=scada.rebirth, every=2.0)
        assert [b.metrics["bdSeq"] for b in scada.of("NBIRTH")][:2] == [0, 1]
    finally:
        node.stop()
