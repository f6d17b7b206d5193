"""The plant floor's protocols switched on and off while the component runs, and a server that
cannot start said in the component's status: the real OPC UA server behind the real publisher
wrapper (publishers/plant.py), a fake broker in place of MQTT."""
from __future__ import annotations

import dataclasses
import json
import socket
import subprocess
import sys
from pathlib import Path

from batchsight.journal import Journal
from batchsight.plant_state import Alarm
from batchsight.publishers.plant import PlantFloor, PlantFloorPublisher
from tests.gateway.opcua_support import free_port, opcua_config
from tests.gateway.test_outbox import FakeBroker
from tests.support import wait_for


def listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_opcua_is_switched_on_and_off_by_a_configuration_update(tmp_path: Path) -> None:
    port = free_port()
    on = opcua_config(tmp_path, port)
    off = dataclasses.replace(on, opcua=dataclasses.replace(on.opcua, enabled=False))
    journal = Journal(on.journal_path)
    publisher = PlantFloorPublisher(off, FakeBroker(), PlantFloor(off, journal))
    publisher.connect()
    assert publisher.plant.sinks == {} and not listening(port), "off by default: nothing started, nothing imported"
    publisher.reconfigure(on)
    wait_for(lambda: listening(port), 30, "the server switched on")
    publisher.reconfigure(off)
    wait_for(lambda: not listening(port), 30, "the server switched off")
    publisher.close()
    journal.close()


def test_a_taken_port_is_an_alarm_in_the_status_until_the_server_runs(tmp_path: Path) -> None:
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen()
    config = opcua_config(tmp_path, blocker.getsockname()[1])
    journal = Journal(config.journal_path)
    broker = FakeBroker()
    publisher = PlantFloorPublisher(config, broker, PlantFloor(config, journal))
    publisher.connect()
    try:
        wait_for(lambda: publisher.plant.alarms(), 30, "the alarm of a server that cannot start")
        publisher.publish(config.topic("status"), {"state": "running", "alarms": ["disk full"]}, retain=True)
        [(_, body, _)] = broker.sent
        status = json.loads(body)
        alarms = status["alarms"]
        assert alarms[0] == "disk full"
        assert alarms[1].startswith(f"OPC UA server not running at {config.opcua.endpoint}")
        assert status["alarm_codes"] == [Alarm.OTHER, Alarm.PLANT_FLOOR]  # the first came without its code
    finally:
        blocker.close()
        publisher.close()
        journal.close()


def test_a_gateway_with_both_off_never_loads_their_libraries(tmp_path: Path) -> None:
    script = ("import sys; from batchsight import wiring, runtime; "
              "print(sorted(m for m in ('asyncua', 'paho', 'google.protobuf') if m in sys.modules))")
    found = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    assert found.strip() == "[]"
