"""Publish straight to an MQTT broker (MQTT 3.1.1, QoS 1) with awscrt's client.

awscrt reconnects by itself with backoff; a publish while disconnected fails fast and the
caller keeps the image's alert pending, so nothing is lost while the broker is down.
"""
from __future__ import annotations

import logging
import threading
from concurrent.futures import Future

from awscrt import io, mqtt

from batchsight.publishers.base import Publisher, PublishError

log = logging.getLogger(__name__)


class MqttPublisher(Publisher):
    def __init__(self, *, host: str, port: int, client_id: str, ack_timeout: float = 10.0,
                 will_topic: str | None = None, will_payload: bytes = b"") -> None:
        self.ack_timeout = ack_timeout
        self._connected = threading.Event()
        event_loop = io.EventLoopGroup(1)
        bootstrap = io.ClientBootstrap(event_loop, io.DefaultHostResolver(event_loop))
        will = (mqtt.Will(topic=will_topic, qos=mqtt.QoS.AT_LEAST_ONCE, payload=will_payload, retain=True)
                if will_topic else None)
        self._connection = mqtt.Connection(
            client=mqtt.Client(bootstrap, None), host_name=host, port=port, client_id=client_id,
            clean_session=False, keep_alive_secs=30, reconnect_min_timeout_secs=1,
            reconnect_max_timeout_secs=30, will=will,
            on_connection_interrupted=self._interrupted, on_connection_resumed=self._resumed)
        self._address = f"{host}:{port}"

    def connect(self) -> None:
        future = self._connection.connect()
        future.add_done_callback(self._first_connect)

    def _first_connect(self, future: Future) -> None:  # type: ignore[type-arg]
        if future.exception() is None:
            self._connected.set()
            log.info("MQTT connected", extra={"broker": self._address})
        else:
            log.warning("MQTT broker unreachable; alerts wait in the journal",
                        extra={"broker": self._address, "error": str(future.exception())})
            threading.Timer(5.0, self.connect).start()

    def _interrupted(self, connection: mqtt.Connection, error: Exception, **_: object) -> None:
        self._connected.clear()
        log.warning("MQTT connection lost; reconnecting", extra={"error": str(error)})

    def _resumed(self, connection: mqtt.Connection, return_code: object, session_present: bool,
                 **_: object) -> None:
        self._connected.set()
        log.info("MQTT connection resumed", extra={"broker": self._address})

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def _publish(self, topic: str, body: bytes, *, retain: bool) -> None:
        if not self._connected.wait(timeout=0.5):
            raise PublishError(f"not connected to the MQTT broker at {self._address}")
        future, _ = self._connection.publish(topic, body, mqtt.QoS.AT_LEAST_ONCE, retain=retain)
        try:
            future.result(timeout=self.ack_timeout)
        except Exception as exc:  # noqa: BLE001 - any failure means "not acknowledged"
            raise PublishError(f"no PUBACK for {topic}: {exc}") from exc

    def close(self) -> None:
        try:
            self._connection.disconnect().result(timeout=5)
        except Exception:  # noqa: BLE001 - closing a dead connection is fine
            pass
