"""A Sparkplug B edge node: the gateway as SCADA (Ignition, a UNS) expects to find it.

Payloads are Eclipse Tahu's protobuf schema (payload.py); the session is ours, on paho-mqtt 2
(the Eclipse MQTT client, kept current), because it needs a will that changes with each
connection. The Python Sparkplug libraries looked at (pysparkplug 0.6, mqtt-spb-wrapper 2.1) pin
paho-mqtt below 2 (the wrapper pins protobuf 3.20 too), and pysparkplug's edge node neither
answers a rebirth request nor connects while the broker is down. The session follows the
Sparkplug B 3.0 rules:

- NDEATH is the MQTT will, carrying ``bdSeq``; each new MQTT connection uses the next bdSeq
  (0-255, wrapping), and its NBIRTH carries the same value;
- on every connection: NBIRTH (node metrics, ``seq`` 0), then DBIRTH of the ``VisionSystem``
  device (its metrics with their current values); ``seq`` then counts every message 0-255;
- DDATA per result (every ``Result/*`` metric, and the counters); NDATA when the status changes
  (report by exception);
- an NCMD writing ``Node Control/Rebirth`` = true publishes NBIRTH and DBIRTH again;
- a clean stop publishes NDEATH itself and disconnects; a kill leaves it to the broker (the will).

QoS 0 and no retain for all of them, as the specification asks. The broker is ``mqtt.*``'s (host,
port, TLS and credentials); the client id is ``{mqtt client id}-spb``. The metric set is
contracts/schemas/sparkplug_metrics.json.
"""
from __future__ import annotations

import contextlib
import logging
import queue
import ssl
import threading
import time
from datetime import datetime
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from batchsight import __version__
from batchsight.config import Config
from batchsight.config_plant import sparkplug_ids
from batchsight.plant_state import condition
from batchsight.sparkplug.payload import Metric, decode, encode
from batchsight.sparkplug.sparkplug_b_pb2 import DataType
from batchsight.verdicts import Evaluation, Messages, verdicts

log = logging.getLogger(__name__)
DEVICE_ID = "VisionSystem"
REBIRTH = "Node Control/Rebirth"
SEQ_LIMIT = 256
BACKLOG = 1000
_T = DataType
NAMESPACE = "spBv1.0"
# The metric set (contracts/schemas/sparkplug_metrics.json describes each; the tests hold the two alike).
NODE_METRICS = {
    "bdSeq": _T.Int64, REBIRTH: _T.Boolean, "Properties/Software": _T.String, "Properties/Site": _T.String,
    "Properties/Line": _T.String, "Properties/Device": _T.String, "Status/State": _T.String,
    "Status/Ready": _T.Boolean, "Status/ErrorCode": _T.Int32, "Status/ErrorText": _T.String,
    "Status/Cloud": _T.String, "Status/Judging": _T.String, "Status/Waiting": _T.Int64,
    "Status/Quarantined": _T.Int64,
}
DEVICE_METRICS = {
    "Result/ResultId": _T.String, "Result/PartId": _T.String, "Result/Lot": _T.String,
    "Result/FileName": _T.String, "Result/Evaluation": _T.Int32, "Result/IsAnomalous": _T.Boolean,
    "Result/Confidence": _T.Double, "Result/AnomalyNames": _T.String, "Result/JudgedBy": _T.String,
    "Result/Model": _T.String, "Result/ModelVersion": _T.String, "Result/Corrected": _T.Boolean,
    "Result/CapturedAt": _T.DateTime, "Result/DetectedAt": _T.DateTime, "Counters/Results": _T.Int64,
    "Counters/OK": _T.Int64, "Counters/NG": _T.Int64, "Counters/NotDecidable": _T.Int64,
}


def _when(text: str) -> datetime | None:
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")) if text else None
    except ValueError:
        return None


def _now_ms() -> int:
    return int(time.time() * 1000)


class SparkplugNode:
    """The edge node: started and stopped with the component (publishers/plant.py)."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.alarm: str | None = None
        self._node: dict[str, Any] = dict.fromkeys(NODE_METRICS)
        self._device: dict[str, Any] = dict.fromkeys(DEVICE_METRICS)
        self._node.update({REBIRTH: False, "Properties/Software": f"batchsight {__version__}",
                           "Status/State": "starting", "Status/Ready": False})
        self._device.update({f"Counters/{k}": 0 for k in ("Results", "OK", "NG", "NotDecidable")})
        self._work: queue.Queue[tuple[str, Any] | None] = queue.Queue(maxsize=BACKLOG)
        self._lock = threading.RLock()  # one message at a time: seq numbers go out in order
        self._seq = 0
        self._next_bd_seq = 0
        self._bd_seq = 0                # the current connection's
        self._connected = False
        self._refused: str | None = None
        self._client: paho.Client | None = None
        self._thread: threading.Thread | None = None
        self._identify()

    def _identify(self) -> None:
        self.group_id, self.node_id = sparkplug_ids(self.config)
        self._node.update({"Properties/Site": self.config.site, "Properties/Line": self.config.line,
                           "Properties/Device": self.config.device})

    # --- lifecycle ----------------------------------------------------------------------------
    def start(self) -> None:
        mqtt = self.config.mqtt
        client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"{self.config.mqtt_client_id}-spb",
                             clean_session=True, protocol=paho.MQTTv311)
        if mqtt.username:
            client.username_pw_set(mqtt.username, mqtt.read_password() or None)
        if mqtt.tls:
            client.tls_set(ca_certs=mqtt.ca_file or None, certfile=mqtt.cert_file or None,
                           keyfile=mqtt.key_file or None, cert_reqs=ssl.CERT_REQUIRED)
        client.reconnect_delay_set(1, 30)
        client.on_connect, client.on_disconnect = self._on_connect, self._on_disconnect
        client.message_callback_add(self._topic("NCMD"), self._on_command)
        self._client = client
        with self._lock:
            self._set_will()
        client.connect_async(mqtt.host, mqtt.port, keepalive=mqtt.keepalive_seconds)
        client.loop_start()
        self._thread = threading.Thread(target=self._run, name="sparkplug", daemon=True)
        self._thread.start()
        log.info("Sparkplug B edge node started", extra={"group_id": self.group_id, "edge_node_id": self.node_id,
                                                         "broker": f"{mqtt.host}:{mqtt.port}"})

    def stop(self, timeout: float = 5.0) -> None:
        """NDEATH (the node says it is leaving), then disconnect; ``timeout`` 0: do not wait for
        the updates still queued."""
        with contextlib.suppress(queue.Full):
            self._work.put_nowait(None)
        if self._thread is not None and timeout > 0:
            self._thread.join(timeout)
        client, self._client = self._client, None
        if client is None:
            return
        with self._lock:
            if self._connected:
                info = client.publish(self._topic("NDEATH"), self._ndeath(), qos=0)
                with contextlib.suppress(RuntimeError, ValueError):
                    info.wait_for_publish(max(timeout, 1.0))
            self._connected = False
        client.disconnect()
        client.loop_stop()

    def reconfigure(self, config: Config) -> None:
        """A new broker or new ids: a new session (NDEATH, then a new connection and births),
        on a thread of its own so that the main loop does not wait for it."""
        old, self.config = self.config, config
        if (old.mqtt, sparkplug_ids(old), old.site, old.line, old.device) != \
                (config.mqtt, sparkplug_ids(config), config.site, config.line, config.device):
            threading.Thread(target=self._restart, name="sparkplug-restart", daemon=True).start()

    def _restart(self) -> None:
        self.stop()
        self._identify()
        self.start()

    # --- what the component hands over (never blocks) -------------------------------------------
    def committed(self, messages: Messages) -> None:
        self._offer(("results", messages))

    def status(self, payload: dict[str, Any]) -> None:
        self._offer(("status", payload))

    def _offer(self, item: tuple[str, Any]) -> None:
        try:
            self._work.put_nowait(item)
        except queue.Full:
            log.warning("Sparkplug node behind: an update dropped", extra={"backlog": BACKLOG})

    def _run(self) -> None:
        while (item := self._work.get()) is not None:
            try:
                kind, value = item
                if kind == "results":
                    self._results(value)
                else:
                    self._status(value)
            except Exception:  # one bad update must not end the node
                log.exception("Sparkplug update failed")

    def _results(self, messages: Messages) -> None:
        for verdict in verdicts(messages):
            counter = {Evaluation.OK: "OK", Evaluation.NOT_OK: "NG"}.get(verdict.evaluation, "NotDecidable")
            with self._lock:
                values = {
                    "Result/ResultId": verdict.image_id, "Result/PartId": verdict.part_id, "Result/Lot": verdict.lot,
                    "Result/FileName": verdict.file_name, "Result/Evaluation": int(verdict.evaluation),
                    "Result/IsAnomalous": verdict.is_anomalous, "Result/Confidence": verdict.confidence,
                    "Result/AnomalyNames": ",".join(verdict.anomaly_names), "Result/JudgedBy": verdict.judged_by,
                    "Result/Model": verdict.model, "Result/ModelVersion": verdict.model_version,
                    "Result/Corrected": verdict.corrected, "Result/CapturedAt": _when(verdict.captured_at),
                    "Result/DetectedAt": _when(verdict.detected_at),
                    "Counters/Results": self._device["Counters/Results"] + 1,
                    f"Counters/{counter}": self._device[f"Counters/{counter}"] + 1}
                self._device.update(values)
                self._send("DDATA", values)

    def _status(self, payload: dict[str, Any]) -> None:
        now = condition(payload)
        values = {"Status/State": now.state, "Status/Ready": now.ready, "Status/ErrorCode": now.error_code,
                  "Status/ErrorText": now.error_text, "Status/Cloud": str(payload.get("cloud", "")),
                  "Status/Judging": str(payload.get("judging", "")), "Status/Waiting": int(payload.get("waiting", 0)),
                  "Status/Quarantined": int(payload.get("quarantined", 0))}
        with self._lock:
            changed = {k: v for k, v in values.items() if self._node.get(k) != v}
            self._node.update(values)
            if changed:
                self._send("NDATA", changed)

    # --- the session (under the lock) ------------------------------------------------------------
    def _topic(self, kind: str, device: bool = False) -> str:
        """spBv1.0/{group}/{kind}/{edge node}[/{device}]"""
        tail = f"/{DEVICE_ID}" if device else ""
        return f"{NAMESPACE}/{self.group_id}/{kind}/{self.node_id}{tail}"

    @staticmethod
    def _metrics(values: dict[str, Any]) -> list[Metric]:
        types = {**NODE_METRICS, **DEVICE_METRICS}
        return [Metric(name, types[name], value) for name, value in values.items()]

    def _next_seq(self) -> int:
        seq, self._seq = self._seq, (self._seq + 1) % SEQ_LIMIT
        return seq

    def _send(self, kind: str, values: dict[str, Any]) -> None:
        if not self._connected or self._client is None:
            return  # the next connection's births carry the current values
        body = encode(self._metrics(values), timestamp=_now_ms(), seq=self._next_seq())
        self._client.publish(self._topic(kind, kind == "DDATA"), body, qos=0)

    def _births(self, client: paho.Client) -> None:
        """NBIRTH (seq 0, this connection's bdSeq) and DBIRTH with every metric's current value."""
        stamp = _now_ms()
        self._seq = 0
        node = self._metrics({**self._node, "bdSeq": self._bd_seq, REBIRTH: False})
        client.publish(self._topic("NBIRTH"), encode(node, timestamp=stamp, seq=self._next_seq()), qos=0)
        device = self._metrics(self._device)
        client.publish(self._topic("DBIRTH", True), encode(device, timestamp=stamp, seq=self._next_seq()), qos=0)

    def _ndeath(self) -> bytes:
        return encode([Metric("bdSeq", DataType.Int64, self._bd_seq)], timestamp=_now_ms(), seq=None)

    def _set_will(self) -> None:
        """The NDEATH the broker publishes if the next connection dies: the next bdSeq's."""
        if self._client is None:
            return
        self._bd_seq, self._next_bd_seq = self._next_bd_seq, (self._next_bd_seq + 1) % SEQ_LIMIT
        self._client.will_set(self._topic("NDEATH"), self._ndeath(), qos=0, retain=False)

    # --- paho's callbacks (its network thread) -----------------------------------------------------
    def _on_connect(self, client: paho.Client, _userdata: Any, _flags: Any, reason: Any, _props: Any) -> None:
        if reason.is_failure:
            said = str(reason)
            if self._refused != said:
                log.error("Sparkplug broker refused the connection; check mqtt.username and mqtt.password",
                          extra={"reason": said})
            self._refused, self.alarm = said, f"Sparkplug: the broker refused the connection ({said})"
            with self._lock:
                self._set_will()  # a CONNECT was sent: the next one announces the next bdSeq
            return
        self._refused, self.alarm = None, None
        client.subscribe(self._topic("NCMD"), qos=1)
        with self._lock:
            self._connected = True
            self._births(client)
        log.info("Sparkplug B node born", extra={"bdSeq": self._bd_seq, "group_id": self.group_id,
                                                 "edge_node_id": self.node_id})

    def _on_disconnect(self, _client: paho.Client, _userdata: Any, _flags: Any, reason: Any, _props: Any) -> None:
        with self._lock:
            was, self._connected = self._connected, False
            if was:
                self._set_will()
        if was and reason.is_failure:
            log.warning("Sparkplug connection lost; reconnecting", extra={"reason": str(reason)})

    def _on_command(self, client: paho.Client, _userdata: Any, message: paho.MQTTMessage) -> None:
        try:
            command = decode(bytes(message.payload))
        except Exception:  # noqa: BLE001 - a malformed command is ignored, never fatal
            log.warning("Sparkplug NCMD not understood", extra={"topic": message.topic})
            return
        if command.metrics.get(REBIRTH) is True:
            log.info("Sparkplug rebirth requested")
            with self._lock:
                if self._connected:
                    self._births(client)
