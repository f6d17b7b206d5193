"""Publish on Greengrass local pub/sub; the MQTT bridge carries it to the plant's broker.

The bridge's ``mqttTopicMapping`` (Pubsub -> LocalMqtt) is deployment configuration, shown in
the README. Local pub/sub has no broker session to lose, so a failed call is simply retried.
"""
from __future__ import annotations

from collections.abc import Callable

from batchsight.greengrass import GreengrassIpc
from batchsight.publishers.base import Publisher, PublishError


class GreengrassPublisher(Publisher):
    def __init__(self, ipc: GreengrassIpc) -> None:
        self.ipc = ipc

    def connect(self) -> None:
        """IPC connects when the client is created; nothing to do."""

    def subscribe(self, topic: str, on_message: Callable[[bytes], None]) -> None:
        self.ipc.subscribe(topic, on_message)

    def _publish(self, topic: str, body: bytes, *, retain: bool) -> None:
        # Local pub/sub keeps no retained messages; the status is re-published every few seconds.
        try:
            self.ipc.publish(topic, body)
        except Exception as exc:  # noqa: BLE001 - any IPC failure: keep the alert, retry later
            raise PublishError(f"Greengrass IPC publish to {topic} failed: {exc}") from exc

    def close(self) -> None:
        """The nucleus owns the connection."""
