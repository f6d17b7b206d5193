"""An operator at the HMI answering alerts: feedback on the device's MQTT topic, the gateway's replies kept.

What an HMI sends when someone presses "confirmed" or "false alarm" under an alert
(docs/contracts.md, Operator feedback; component/batchsight/feedback.py reads it):

    factory/{site}/{line}/{device}/inspection/feedback
    {"v": 1, "image_id": "<the alert's image_id>", "verdict": "confirmed" | "false_alarm",
     "label": "...", "operator": "..."}

published at QoS 1; the gateway answers each message on ``.../inspection/feedback/response``
with ``{"v": 1, "ok": true|false, "image_id": ..., "error": ...}``, which this keeps by image id.
The gateway then writes the answer as a ``.label.manifest`` beside the image's result in the
final bucket, where `batchsight dataset build --feedback` finds it.
"""
from __future__ import annotations

import json
import os
import threading
import time
from typing import Any

from awscrt import io, mqtt

VERDICTS = ("confirmed", "false_alarm")


class Operator:
    """An MQTT client that publishes operator answers and collects the gateway's replies."""

    def __init__(self, port: int, device_topic: str, *, name: str = "demo-operator") -> None:
        """``device_topic``: ``factory/{site}/{line}/{device}/inspection``."""
        self.device_topic, self.name = device_topic, name
        self.replies: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        loop = io.EventLoopGroup(1)
        bootstrap = io.ClientBootstrap(loop, io.DefaultHostResolver(loop))
        self._connection = mqtt.Connection(client=mqtt.Client(bootstrap, None), host_name="127.0.0.1", port=port,
                                           client_id=f"batchsight-operator-{os.getpid()}")

    def start(self) -> Operator:
        self._connection.connect().result(10)
        future, _ = self._connection.subscribe(f"{self.device_topic}/feedback/response", mqtt.QoS.AT_LEAST_ONCE,
                                               callback=self._on_reply)
        future.result(10)
        return self

    def _on_reply(self, topic: str, payload: bytes, **_: Any) -> None:
        reply = json.loads(payload)
        with self._lock:
            self.replies[str(reply.get("image_id", ""))] = reply

    def answer(self, image_id: str, verdict: str, *, label: str = "") -> None:
        """Publish one answer, as the HMI does (QoS 1: the broker has it when this returns)."""
        if verdict not in VERDICTS:
            raise ValueError(f"verdict must be one of {VERDICTS}, not {verdict!r}")
        message = {"v": 1, "image_id": image_id, "verdict": verdict, "label": label, "operator": self.name}
        future, _ = self._connection.publish(f"{self.device_topic}/feedback", json.dumps(message).encode(),
                                             mqtt.QoS.AT_LEAST_ONCE)
        future.result(10)

    def wait_for_replies(self, image_ids: list[str], timeout: float) -> dict[str, dict[str, Any]]:
        """The gateway's replies to these answers, as many as came within ``timeout``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if all(image_id in self.replies for image_id in image_ids):
                    break
            time.sleep(0.2)
        with self._lock:
            return {image_id: self.replies[image_id] for image_id in image_ids if image_id in self.replies}

    def stop(self) -> None:
        self._connection.disconnect().result(5)
