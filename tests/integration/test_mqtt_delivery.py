"""Direct MQTT delivery against a real broker process that the tests stop and restart.

While the broker is down the alerter keeps handing results to the outbox (nothing lost);
after it restarts on the same port the outbox drains: every message arrives once, in
order, over MQTT 5 and 3.1.1, over plain TCP, mutual TLS, and with a username and password.
MQTT 5, TLS and passwords need mosquitto (amqtt speaks 3.1.1 only): those tests skip, saying
so, when it is not installed; the 3.1.1 test then runs on the amqtt fallback.
"""
from __future__ import annotations

import json
import logging
import os
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from awscrt import io, mqtt

from batchsight.alerter import Alerter
from batchsight.config import Config, ConfigError, config_from_dict
from batchsight.journal import Journal
from batchsight.publishers.mqtt import MqttPublisher, TlsFiles, tls_context
from batchsight.runtime import build_publisher
from batchsight_tools.localcloud.broker import BrokerTls, MqttBroker, _mosquitto
from tests.support import report_reliability, wait_for
from tests.gateway.test_outbox import AWS, batch, stored_image

pytestmark = pytest.mark.integration

NO_MOSQUITTO = "mosquitto is not installed (apt-get install -y mosquitto): "
needs_mosquitto_for_mqtt5 = pytest.mark.skipif(
    _mosquitto() is None, reason=NO_MOSQUITTO + "amqtt, the fallback broker, speaks only MQTT 3.1.1")
needs_mosquitto_for_tls = pytest.mark.skipif(
    _mosquitto() is None, reason=NO_MOSQUITTO + "amqtt, the fallback broker, has no TLS listener here")
needs_mosquitto_for_passwords = pytest.mark.skipif(
    _mosquitto() is None, reason=NO_MOSQUITTO + "the test uses mosquitto's password file")
LOG_PROTOCOL = {"5": "p5", "3.1.1": "p2"}  # how mosquitto logs the protocol of a new client


class Listener:
    """A plant HMI stand-in that keeps every message in arrival order."""

    def __init__(self, port: int, *, tls: TlsFiles | None = None, topic: str = "factory/#") -> None:
        self.messages: list[tuple[str, bytes]] = []
        self._lock = threading.Lock()
        loop = io.EventLoopGroup(1)
        bootstrap = io.ClientBootstrap(loop, io.DefaultHostResolver(loop))
        self._connection = mqtt.Connection(client=mqtt.Client(bootstrap, tls_context(tls) if tls else None),
                                           host_name="127.0.0.1", port=port,
                                           client_id=f"hmi-{os.getpid()}-{time.monotonic_ns()}")
        self._connection.connect().result(10)
        future, _ = self._connection.subscribe(topic, mqtt.QoS.AT_LEAST_ONCE, callback=self._on_message)
        future.result(10)

    def _on_message(self, topic: str, payload: bytes, **_: Any) -> None:
        with self._lock:
            self.messages.append((topic, payload))

    def received(self) -> list[tuple[str, bytes]]:
        with self._lock:
            return list(self.messages)

    def close(self) -> None:
        self._connection.disconnect().result(5)


def edge_config(tmp_path: Path, port: int, **mqtt_settings: Any) -> Config:
    return config_from_dict({"site": "p", "line": "l", "device": "d", "aws": AWS,
                             "drop_folder": str(tmp_path / "drop"), "work_folder": str(tmp_path / "work"),
                             "mqtt": {"host": "127.0.0.1", "port": port, **mqtt_settings}})


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journal]:
    journal = Journal(tmp_path / "work" / "journal.sqlite3")
    yield journal
    journal.close()


def broker_for(protocol: str) -> MqttBroker:
    # MQTT 5 needs mosquitto whatever BATCHSIGHT_BROKER says; 3.1.1 runs on either broker
    return MqttBroker(prefer="mosquitto") if protocol == "5" else MqttBroker()


@pytest.mark.parametrize("protocol", [pytest.param("5", marks=needs_mosquitto_for_mqtt5), "3.1.1"],
                         ids=["mqtt5", "mqtt311"])
def test_alerts_made_while_the_broker_is_down_arrive_once_each_in_order(tmp_path: Path, journal: Journal,
                                                                       protocol: str) -> None:
    broker = broker_for(protocol).start()
    config = edge_config(tmp_path, broker.port, protocol=protocol, client_id=f"gw-{protocol}")
    publisher = MqttPublisher(host="127.0.0.1", port=broker.port, client_id=config.mqtt_client_id,
                              protocol=protocol, reconnect_min_seconds=1, reconnect_max_seconds=2,
                              will_topic=config.topic("status"))
    alerter = Alerter(config, journal, publisher)
    listener: Listener | None = None
    try:
        publisher.connect()
        wait_for(lambda: publisher.ready, 10, "the first connection")
        # the line runs while the broker is up: delivered at once
        listener = Listener(broker.port)
        batch(journal, "b0", 1)
        first = stored_image(journal, config, 0, anomalous=False, batch_id="b0")
        alerter.publish_pending()
        wait_for(lambda: len(listener.received()) == 2, 10, "the result and batch summary before the outage")
        listener.close()

        broker.stop()
        wait_for(lambda: not publisher.ready, 10, "the client to notice the outage")
        batch(journal, "b1", 20)
        for n in range(1, 21):  # 20 results come in while the broker is down; two are defects
            stored_image(journal, config, n, anomalous=n in (5, 12), batch_id="b1")
            alerter.publish_pending()  # the component's loop keeps ticking
        expected = [(m.topic, m.body) for m in alerter.outbox.messages(1000)]
        assert len(expected) == 23, "20 results + 2 alerts + 1 batch summary wait in the outbox"
        assert alerter.outbox.pending() == 23 and not list((config.work_folder / "spool").iterdir())

        broker.start()  # same port; a fresh process (no persistence): only the outbox remembers
        restarted = time.monotonic()
        listener = Listener(broker.port)  # the HMI comes back with the broker
        wait_for(lambda: alerter.outbox.pending() == 0, 20, "the outbox to drain after the reconnection",
                 tick=alerter.publish_pending)
        wait_for(lambda: len(listener.received()) >= 23, 10, "every message at the HMI")
        recover_s = time.monotonic() - restarted
        time.sleep(0.5)  # a duplicate would arrive now
        received = listener.received()
        assert received == expected, "each message once, in the order it was produced"
        ids = [json.loads(body).get("image_id") for topic, body in received if not topic.endswith("/batch")]
        assert first not in ids
        assert [t.rsplit("/", 1)[-1] for t, _ in received].count("alert") == 2
        report_reliability(f"broker-down-mqtt{protocol}", dropped=20, accounted=len(set(ids)),
                           duplicates=len(received) - len(set(received)), recover_s=recover_s)
        if broker.kind == "mosquitto":
            assert f"as {config.mqtt_client_id} ({LOG_PROTOCOL[protocol]}," in broker.log_text(), \
                f"the broker saw MQTT {protocol}"
    finally:
        if listener:
            listener.close()
        publisher.close()
        broker.stop()


# --- TLS --------------------------------------------------------------------------------------
def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=30)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A CA, a server certificate for 127.0.0.1/localhost and two client certificates, one of
    them from a CA the broker does not trust."""
    folder = tmp_path_factory.mktemp("pki")
    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    for ca in ("ca", "rogue-ca"):
        _openssl("req", "-x509", *ec, "-keyout", f"{ca}.key", "-out", f"{ca}.crt", "-days", "2",
                 "-subj", f"/CN=batchsight test {ca}", "-addext", "basicConstraints=critical,CA:TRUE",
                 "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=folder)
    leaves = {"server": ("ca", "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n"),
              "client": ("ca", "extendedKeyUsage=clientAuth\n"),
              "rogue": ("rogue-ca", "extendedKeyUsage=clientAuth\n")}
    for name, (ca, extensions) in leaves.items():
        (folder / f"{name}.ext").write_text("basicConstraints=CA:FALSE\n" + extensions)
        _openssl("req", *ec, "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN=batchsight-{name}",
                 cwd=folder)
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.crt", "-CAkey", f"{ca}.key",
                 "-CAcreateserial", "-out", f"{name}.crt", "-days", "2", "-extfile", f"{name}.ext", cwd=folder)
    return {p.stem + p.suffix.replace(".", "_"): p for p in folder.iterdir()}


@needs_mosquitto_for_tls
@pytest.mark.parametrize("protocol", ["5", "3.1.1"], ids=["mqtt5", "mqtt311"])
def test_mutual_tls_from_the_configuration(tmp_path: Path, journal: Journal, pki: dict[str, Path],
                                           protocol: str) -> None:
    server = BrokerTls(ca_file=pki["ca_crt"], cert_file=pki["server_crt"], key_file=pki["server_key"])
    broker = MqttBroker(prefer="mosquitto", tls=server).start()
    client_files = {"ca_file": str(pki["ca_crt"]), "cert_file": str(pki["client_crt"]),
                    "key_file": str(pki["client_key"])}
    config = edge_config(tmp_path, broker.port, protocol=protocol, tls=True, **client_files)
    publisher = build_publisher(config)
    rogue = build_publisher(edge_config(tmp_path, broker.port, protocol=protocol, tls=True,
                                        client_id="rogue", ca_file=str(pki["ca_crt"]),
                                        cert_file=str(pki["rogue_crt"]), key_file=str(pki["rogue_key"])))
    alerter = Alerter(config, journal, publisher)
    listener = Listener(broker.port, tls=TlsFiles(**client_files))
    try:
        publisher.connect()
        rogue.connect()
        batch(journal, "b1", 3)
        ids = [stored_image(journal, config, n, anomalous=False, batch_id="b1") for n in range(3)]
        wait_for(lambda: alerter.outbox.pending() == 0, 15, "the outbox to drain over mutual TLS",
                 tick=alerter.publish_pending)
        wait_for(lambda: len(listener.received()) == 4, 10, "3 results and the summary")
        assert [json.loads(b).get("image_id") for _, b in listener.received()] == [*ids, None]
        wait_for(lambda: "certificate verify failed" in broker.log_text(), 10, "the rogue client's handshake")
        assert not rogue.ready, "a client certificate from another CA is refused"
        assert f"({LOG_PROTOCOL[protocol]}," in broker.log_text(), f"the broker saw MQTT {protocol}"
    finally:
        listener.close()
        rogue.close()
        publisher.close()
        broker.stop()


@needs_mosquitto_for_passwords
def test_username_and_password_file_and_the_password_is_never_logged(tmp_path: Path, journal: Journal,
                                                                     caplog: pytest.LogCaptureFixture) -> None:
    secret = "s3cret-Pa55"
    broker = MqttBroker(prefer="mosquitto", users={"gateway": secret, "hmi": "hmi-pass"}).start()
    password_file = tmp_path / "mqtt-password"
    password_file.write_text(secret + "\n")
    password_file.chmod(0o600)
    good = edge_config(tmp_path, broker.port, username="gateway", password_file=str(password_file),
                       password="ignored-because-the-file-wins")
    caplog.set_level(logging.DEBUG)
    publisher = build_publisher(good)
    wrong = build_publisher(edge_config(tmp_path, broker.port, username="gateway", password="Wr0ng-Pa55",
                                        client_id="intruder"))
    try:
        publisher.connect()
        wrong.connect()
        wait_for(lambda: publisher.ready, 10, "the connection with the password from the file")
        publisher.publish(good.topic("status"), {"v": 1, "state": "running"}, retain=True)
        wait_for(lambda: "not authorised" in broker.log_text(), 10, "the wrong password's attempt")
        assert not wrong.ready, "a wrong password is refused"
        assert "u'gateway')" in broker.log_text(), "the user name goes out as configured (no SDK metrics)"
    finally:
        publisher.close()
        wrong.close()
        broker.stop()
    logged = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    assert "MQTT password sent without TLS" in logged
    assert secret not in logged and "Wr0ng-Pa55" not in logged
    assert secret not in repr(good), "the settings' repr hides the password"


# --- settings -----------------------------------------------------------------------------------
def _error(tmp_path: Path, **mqtt_settings: Any) -> str:
    with pytest.raises(ConfigError) as caught:
        edge_config(tmp_path, 1883, **mqtt_settings)
    return str(caught.value)


def test_mqtt_settings_are_checked_and_the_error_names_the_setting(tmp_path: Path) -> None:
    assert edge_config(tmp_path, 1883).mqtt.protocol == "5"
    assert edge_config(tmp_path, 1883, protocol="3.1.1").mqtt.protocol == "3.1.1"
    assert "mqtt.protocol" in _error(tmp_path, protocol="4")
    assert "mqtt.protocol" in _error(tmp_path, protocol=5)  # unquoted YAML 5 is a number
    assert "mqtt.keepalive_seconds" in _error(tmp_path, keepalive_seconds=0)
    assert "mqtt.ca_file" in _error(tmp_path, tls=True, ca_file=str(tmp_path / "missing.pem"))
    assert "mqtt.ca_file: only used with mqtt.tls" in _error(tmp_path, ca_file="/etc/hostname")
    assert "mqtt.key_file" in _error(tmp_path, tls=True, cert_file="/etc/hostname")
    assert "mqtt.password_file" in _error(tmp_path, password_file=str(tmp_path / "nope"))
    assert "mqtt.username" in _error(tmp_path, protocol="3.1.1", password="x")
    assert "mqtt.tls" in _error(tmp_path, tls="yes")
    tls_only = edge_config(tmp_path, 8883, tls=True)  # server-authenticated TLS, system trust store
    assert tls_only.mqtt.tls and not tls_only.mqtt.cert_file
