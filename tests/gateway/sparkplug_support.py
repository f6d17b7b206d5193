"""A Sparkplug host application for the tests: every message under spBv1.0/ on a real broker,
decoded with Eclipse Tahu's schema (batchsight.sparkplug.payload)."""
from __future__ import annotations

import threading
import time
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from batchsight.sparkplug.node import REBIRTH
from batchsight.sparkplug.payload import Decoded, Metric, decode, encode
from batchsight.sparkplug.sparkplug_b_pb2 import DataType


class Scada:
    """A Sparkplug host application's view: every message under spBv1.0/, decoded."""

    def __init__(self, port: int, group: str, node: str) -> None:
        self.prefix, self.node = f"spBv1.0/{group}/", node
        self.seen: list[tuple[str, Decoded]] = []
        self.lock = threading.Lock()
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id="scada")
        self.subscribed = threading.Event()
        self.client.on_message = self._on_message
        self.client.on_connect = lambda client, *_: client.subscribe("spBv1.0/#", qos=0)  # again after a reconnect
        self.client.on_subscribe = lambda *_: self.subscribed.set()
        self.client.reconnect_delay_set(1, 2)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        assert self.subscribed.wait(10), "the test's Sparkplug host could not subscribe"

    def _on_message(self, _client: Any, _userdata: Any, message: paho.MQTTMessage) -> None:
        with self.lock:
            self.seen.append((message.topic.removeprefix(self.prefix), decode(bytes(message.payload))))

    def kinds(self) -> list[str]:
        with self.lock:
            return [topic.split("/")[0] for topic, _ in self.seen]

    def of(self, kind: str) -> list[Decoded]:
        with self.lock:
            return [payload for topic, payload in self.seen if topic.split("/")[0] == kind]

    def rebirth(self) -> None:
        body = encode([Metric(REBIRTH, DataType.Boolean, True)], timestamp=int(time.time() * 1000), seq=None)
        self.client.publish(f"{self.prefix}NCMD/{self.node}", body)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()
