"""The publisher contract: deliver a JSON payload on a topic, at least once, or raise.

Two ways in: ``publish`` sends and waits for the broker's acknowledgement (the status
message uses it); ``send`` starts a QoS 1 publish and hands back a ``Delivery`` to wait on
later, which lets the outbox (``publishers/outbox.py``) keep one message in flight across
loop ticks without ever blocking the main loop on a silent broker.
"""
from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

MAX_PAYLOAD_BYTES = 128 * 1024  # Greengrass' Moquette broker refuses larger messages


class PublishError(RuntimeError):
    """The message was not acknowledged; the caller keeps it and tries again later."""


def encode(topic: str, payload: dict[str, Any]) -> bytes:
    """The exact bytes we publish (compact JSON), refused when over the brokers' limit."""
    body = json.dumps(payload, separators=(",", ":")).encode()
    if len(body) > MAX_PAYLOAD_BYTES:
        raise PublishError(f"payload for {topic} is {len(body)} bytes, over {MAX_PAYLOAD_BYTES}")
    return body


class Delivery(ABC):
    """One QoS 1 publish on its way to the broker."""

    @abstractmethod
    def wait(self, timeout: float) -> bool:
        """True once the broker acknowledged it, False if still pending after ``timeout``
        seconds; raises PublishError when it definitely failed (send it again later)."""


class Delivered(Delivery):
    """A publish that was acknowledged before ``send`` returned."""

    def wait(self, timeout: float) -> bool:
        return True


class Publisher(ABC):
    def publish(self, topic: str, payload: dict[str, Any], *, retain: bool = False) -> None:
        self._publish(topic, encode(topic, payload), retain=retain)

    def send(self, topic: str, body: bytes, *, retain: bool = False) -> Delivery:
        """Start publishing ``body`` (QoS 1) and return without waiting for the acknowledgement.

        The default waits (synchronous publishers); the MQTT client overrides it.
        """
        if len(body) > MAX_PAYLOAD_BYTES:
            raise PublishError(f"payload for {topic} is {len(body)} bytes, over {MAX_PAYLOAD_BYTES}")
        self._publish(topic, body, retain=retain)
        return Delivered()

    @property
    def ready(self) -> bool:
        """Worth trying now (connected); False makes the outbox wait without counting a failure."""
        return True

    @abstractmethod
    def _publish(self, topic: str, body: bytes, *, retain: bool) -> None:
        """Send and wait for the broker's acknowledgement (QoS 1)."""

    def subscribe(self, topic: str, on_message: Callable[[bytes], None]) -> None:
        """Receive messages on ``topic`` (QoS 1), kept across reconnects. Call before connect()."""
        raise NotImplementedError(f"{type(self).__name__} cannot subscribe")

    @abstractmethod
    def connect(self) -> None:
        """Connect (or start connecting); must not raise when the broker is down."""

    @abstractmethod
    def close(self) -> None:
        """Disconnect cleanly."""
