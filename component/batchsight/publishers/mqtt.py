"""Publish straight to an MQTT broker with awscrt's clients: MQTT 5 (default) or 3.1.1, QoS 1.

Plain TCP or TLS (a CA to trust, and a client certificate for brokers that require one),
username and password from the configuration. Both clients reconnect by themselves with
exponential backoff and keep a persistent session, so a QoS 1 publish that was in flight
when the connection dropped is sent again by the client once it is back (its ``Delivery``
then completes), instead of being sent a second time by us.

Nothing waits here while the broker is down: ``ready`` is False, the outbox keeps the
messages on disk, and drains them in order after the reconnection.
"""
from __future__ import annotations

import concurrent.futures
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from awscrt import io, mqtt, mqtt5

from batchsight.publishers.base import MAX_PAYLOAD_BYTES, Delivery, Publisher, PublishError

log = logging.getLogger(__name__)

PROTOCOLS = ("5", "3.1.1")
SESSION_EXPIRY_SECONDS = 24 * 3600  # MQTT 5: the broker keeps our session across short outages
OFFLINE_PAYLOAD = b'{"v":1,"state":"offline"}'


@dataclass(frozen=True)
class TlsFiles:
    """PEM files; an empty ``ca_file`` trusts the system store, empty cert/key = no client cert."""

    ca_file: str = ""
    cert_file: str = ""
    key_file: str = ""


def tls_context(files: TlsFiles) -> io.ClientTlsContext:
    if files.cert_file:
        options = io.TlsContextOptions.create_client_with_mtls_from_path(files.cert_file, files.key_file)
    else:
        options = io.TlsContextOptions()
    if files.ca_file:
        options.override_default_trust_store_from_path(None, files.ca_file)
    return io.ClientTlsContext(options)


class _FutureDelivery(Delivery):
    def __init__(self, future: concurrent.futures.Future[Any], topic: str,
                 check: Callable[[Any], None]) -> None:
        self._future, self._topic, self._check = future, topic, check

    def wait(self, timeout: float) -> bool:
        done, _ = concurrent.futures.wait([self._future], timeout=max(0.0, timeout))
        if not done:
            return False
        exc = self._future.exception()
        if exc is not None:
            raise PublishError(f"no PUBACK for {self._topic}: {exc}") from exc
        self._check(self._future.result())
        return True


def _no_check(_: Any) -> None:
    """MQTT 3.1.1's PUBACK carries no reason code: an acknowledgement is a success."""


class MqttPublisher(Publisher):
    def __init__(self, *, host: str, port: int, client_id: str, protocol: str = "5",
                 tls: TlsFiles | None = None, username: str = "", password: str = "",
                 keepalive_seconds: int = 30, ack_timeout: float = 10.0,
                 reconnect_min_seconds: float = 1.0, reconnect_max_seconds: float = 30.0,
                 will_topic: str | None = None, will_payload: bytes = OFFLINE_PAYLOAD) -> None:
        if protocol not in PROTOCOLS:
            raise ValueError(f"MQTT protocol must be one of {PROTOCOLS}, got {protocol!r}")
        self.protocol = protocol
        self.ack_timeout = ack_timeout
        self._host, self._port, self._client_id = host, port, client_id
        self._tls = tls
        self._username, self._password = username, password  # the password is never logged
        self._keepalive = keepalive_seconds
        self._reconnect = (reconnect_min_seconds, reconnect_max_seconds)
        self._will = (will_topic, will_payload)
        self._connected = threading.Event()
        self._closing = threading.Event()
        self._stopped = threading.Event()
        self._retry_delay = reconnect_min_seconds
        self._timer: threading.Timer | None = None
        self._started = False
        self._outage_reported = False
        event_loop = io.EventLoopGroup(1)
        self._bootstrap = io.ClientBootstrap(event_loop, io.DefaultHostResolver(event_loop))
        self._tls_ctx = tls_context(tls) if tls else None
        self._client: mqtt5.Client | None = None
        self._connection: mqtt.Connection | None = None
        self._subscriptions: dict[str, Callable[[bytes], None]] = {}
        if protocol == "5":
            self._client = self._mqtt5_client()
        else:
            self._connection = self._mqtt311_connection()

    @property
    def address(self) -> str:
        return f"{'mqtts' if self._tls else 'mqtt'}://{self._host}:{self._port} (MQTT {self.protocol})"

    # --- MQTT 5 -----------------------------------------------------------------------------
    def _mqtt5_client(self) -> mqtt5.Client:
        will_topic, will_payload = self._will
        will = (mqtt5.PublishPacket(topic=will_topic, payload=will_payload, qos=mqtt5.QoS.AT_LEAST_ONCE,
                                    retain=True) if will_topic else None)
        connect = mqtt5.ConnectPacket(
            client_id=self._client_id, keep_alive_interval_sec=self._keepalive,
            username=self._username or None, password=self._password or None,
            session_expiry_interval_sec=SESSION_EXPIRY_SECONDS, will=will)
        options = mqtt5.ClientOptions(
            host_name=self._host, port=self._port, bootstrap=self._bootstrap, tls_ctx=self._tls_ctx,
            connect_options=connect,
            # rejoin the session after the first success: unacknowledged QoS 1 publishes resume
            session_behavior=mqtt5.ClientSessionBehaviorType.REJOIN_POST_SUCCESS,
            # QoS 1 publishes stay queued in the client across a disconnection
            offline_queue_behavior=mqtt5.ClientOperationQueueBehaviorType.FAIL_NON_QOS1_PUBLISH_ON_DISCONNECT,
            retry_jitter_mode=mqtt5.ExponentialBackoffJitterMode.FULL,
            min_reconnect_delay_ms=int(self._reconnect[0] * 1000),
            max_reconnect_delay_ms=int(self._reconnect[1] * 1000),
            ack_timeout_sec=max(1, int(self.ack_timeout)),
            disable_metrics=True,  # awscrt would otherwise append SDK metrics to the username
            on_lifecycle_event_connection_success_fn=self._mqtt5_connected,
            on_lifecycle_event_connection_failure_fn=self._mqtt5_failed,
            on_lifecycle_event_disconnection_fn=self._mqtt5_disconnected,
            on_lifecycle_event_stopped_fn=lambda _data: self._stopped.set(),
            on_publish_callback_fn=self._mqtt5_received)
        return mqtt5.Client(options)

    def _mqtt5_received(self, data: mqtt5.PublishReceivedData) -> None:
        packet = data.publish_packet
        self._deliver(packet.topic, bytes(packet.payload or b""))

    def _unreachable(self, error: str, **extra: object) -> None:
        """Warn once per outage; the client keeps retrying with backoff."""
        level = logging.DEBUG if self._outage_reported else logging.WARNING
        self._outage_reported = True
        log.log(level, "MQTT broker unreachable; alerts wait in the outbox",
                extra={"broker": self.address, "error": error, **extra})

    def _mqtt5_connected(self, data: mqtt5.LifecycleConnectSuccessData) -> None:
        self._connected.set()
        self._resubscribe()
        self._outage_reported = False
        log.info("MQTT connected", extra={"broker": self.address,
                                          "session_present": bool(data.connack_packet.session_present)})

    def _mqtt5_failed(self, data: mqtt5.LifecycleConnectFailureData) -> None:
        self._unreachable(data.connack_packet.reason_code.name if data.connack_packet else str(data.exception))

    def _mqtt5_disconnected(self, data: mqtt5.LifecycleDisconnectData) -> None:
        self._connected.clear()
        if not self._closing.is_set():
            log.warning("MQTT connection lost; reconnecting", extra={"broker": self.address,
                                                                     "error": str(data.exception)})

    @staticmethod
    def _check_puback(result: mqtt5.PublishCompletionData) -> None:
        puback = result.puback
        if puback is not None and puback.reason_code >= 0x80:
            raise PublishError(f"broker refused the message: {puback.reason_code.name}"
                               f"{' (' + puback.reason_string + ')' if puback.reason_string else ''}")

    # --- MQTT 3.1.1 -------------------------------------------------------------------------
    def _mqtt311_connection(self) -> mqtt.Connection:
        will_topic, will_payload = self._will
        will = (mqtt.Will(topic=will_topic, qos=mqtt.QoS.AT_LEAST_ONCE, payload=will_payload, retain=True)
                if will_topic else None)
        return mqtt.Connection(
            client=mqtt.Client(self._bootstrap, self._tls_ctx), host_name=self._host, port=self._port,
            client_id=self._client_id, clean_session=False, keep_alive_secs=self._keepalive,
            reconnect_min_timeout_secs=max(1, int(self._reconnect[0])),
            reconnect_max_timeout_secs=max(1, int(self._reconnect[1])),
            protocol_operation_timeout_ms=int(self.ack_timeout * 1000), will=will,
            username=self._username or None, password=self._password or None, disable_metrics=True,
            on_connection_interrupted=self._interrupted, on_connection_resumed=self._resumed)

    def _first_connect(self, future: concurrent.futures.Future[Any]) -> None:
        if future.exception() is None:
            self._retry_delay = self._reconnect[0]
            self._connected.set()
            self._resubscribe()
            self._outage_reported = False
            log.info("MQTT connected", extra={"broker": self.address})
            return
        if self._closing.is_set():
            return
        self._unreachable(str(future.exception()), retry_in_s=self._retry_delay)
        # awscrt's 3.1.1 connection only reconnects by itself after a first success
        self._timer = threading.Timer(self._retry_delay, self.connect)
        self._timer.daemon = True
        self._timer.start()
        self._retry_delay = min(self._reconnect[1], self._retry_delay * 2)

    def _interrupted(self, connection: mqtt.Connection, error: Exception, **_: object) -> None:
        self._connected.clear()
        if not self._closing.is_set():
            log.warning("MQTT connection lost; reconnecting", extra={"broker": self.address,
                                                                     "error": str(error)})

    def _resumed(self, connection: mqtt.Connection, return_code: object, session_present: bool,
                 **_: object) -> None:
        self._connected.set()
        if not session_present:
            self._resubscribe()
        self._outage_reported = False
        log.info("MQTT connection resumed", extra={"broker": self.address,
                                                   "session_present": session_present})

    # --- subscriptions (operator feedback) ---------------------------------------------------
    def subscribe(self, topic: str, on_message: Callable[[bytes], None]) -> None:
        self._subscriptions[topic] = on_message

    def _resubscribe(self) -> None:
        """(Re)subscribe after every connection the broker did not keep a session for."""
        for topic in self._subscriptions:
            if self._client is not None:
                self._client.subscribe(mqtt5.SubscribePacket(subscriptions=[
                    mqtt5.Subscription(topic_filter=topic, qos=mqtt5.QoS.AT_LEAST_ONCE)]))
            elif self._connection is not None:
                self._connection.subscribe(topic, mqtt.QoS.AT_LEAST_ONCE,
                                           callback=lambda topic, payload, **_: self._deliver(topic, payload))

    def _deliver(self, topic: str, payload: bytes) -> None:
        handler = self._subscriptions.get(topic)
        if handler is None:
            return
        try:
            handler(payload)
        except Exception:  # noqa: BLE001 - a handler bug must not kill the client's thread
            log.exception("message handler failed", extra={"topic": topic})

    # --- the Publisher interface ------------------------------------------------------------
    def connect(self) -> None:
        if self._closing.is_set():
            return
        if self._client is not None:
            self._started = True
            self._client.start()  # connects, and reconnects with backoff, until stop()
        else:
            assert self._connection is not None
            self._connection.connect().add_done_callback(self._first_connect)

    @property
    def ready(self) -> bool:
        return self._connected.is_set()

    connected = ready

    def send(self, topic: str, body: bytes, *, retain: bool = False) -> Delivery:
        if len(body) > MAX_PAYLOAD_BYTES:
            raise PublishError(f"payload for {topic} is {len(body)} bytes, over {MAX_PAYLOAD_BYTES}")
        try:
            if self._client is not None:
                future = self._client.publish(mqtt5.PublishPacket(
                    topic=topic, payload=body, qos=mqtt5.QoS.AT_LEAST_ONCE, retain=retain))
                return _FutureDelivery(future, topic, self._check_puback)
            assert self._connection is not None
            future, _packet_id = self._connection.publish(topic, body, mqtt.QoS.AT_LEAST_ONCE, retain=retain)
            return _FutureDelivery(future, topic, _no_check)
        except Exception as exc:  # noqa: BLE001 - the client refused to take it: not sent
            raise PublishError(f"publish to {topic} failed: {exc}") from exc

    def _publish(self, topic: str, body: bytes, *, retain: bool) -> None:
        if not self.ready:
            raise PublishError(f"not connected to the MQTT broker at {self.address}")
        if not self.send(topic, body, retain=retain).wait(self.ack_timeout):
            raise PublishError(f"no PUBACK for {topic} within {self.ack_timeout} s")

    def close(self) -> None:
        self._closing.set()
        if self._timer is not None:
            self._timer.cancel()
        try:
            if self._client is not None and self._started:
                self._client.stop(mqtt5.DisconnectPacket())
                self._stopped.wait(timeout=5)
            elif self._connection is not None:
                self._connection.disconnect().result(timeout=5)
        except Exception:  # noqa: BLE001 - closing a dead connection is fine
            pass
        self._connected.clear()
