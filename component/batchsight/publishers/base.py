"""The publisher contract: deliver a JSON payload on a topic, at least once, or raise."""
from __future__ import annotations

import json
from abc import ABC, abstractmethod
from typing import Any

MAX_PAYLOAD_BYTES = 128 * 1024  # Greengrass' Moquette broker refuses larger messages


class PublishError(RuntimeError):
    """The message was not acknowledged; the caller keeps it and tries again later."""


class Publisher(ABC):
    def publish(self, topic: str, payload: dict[str, Any], *, retain: bool = False) -> None:
        body = json.dumps(payload, separators=(",", ":")).encode()
        if len(body) > MAX_PAYLOAD_BYTES:
            raise PublishError(f"payload for {topic} is {len(body)} bytes, over {MAX_PAYLOAD_BYTES}")
        self._publish(topic, body, retain=retain)

    @abstractmethod
    def _publish(self, topic: str, body: bytes, *, retain: bool) -> None:
        """Send and wait for the broker's acknowledgement (QoS 1)."""

    @abstractmethod
    def connect(self) -> None:
        """Connect (or start connecting); must not raise when the broker is down."""

    @abstractmethod
    def close(self) -> None:
        """Disconnect cleanly."""
