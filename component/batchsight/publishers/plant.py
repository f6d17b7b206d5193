"""The plant floor's own protocols beside MQTT: the OPC UA server and the Sparkplug B node.

Both are *sinks* of what the alert path already produces, composed by the wiring around the
``Publisher`` and the outbox, so neither the core nor the main loop knows they exist:

- results: every hand-off transaction's messages (``Handoff.queued``) are given to the sinks
  once the transaction has committed (``ObservedOutbox``), i.e. when the image is ``alerted``
  in the journal, not when (or whether) the MQTT broker acknowledges them: a PLC on OPC UA gets
  its results while the broker is down, or when there is none;
- status: the retained status the main loop publishes every 10 s (and at each change, and at
  stop) passes through ``PlantFloorPublisher.publish``, which hands it to the sinks and adds
  their alarms (a port already in use, say) to it;
- lifecycle: ``connect`` starts the sinks, ``close`` stops them (Sparkplug's NDEATH, the OPC UA
  server's shutdown), ``reconfigure`` starts, stops or restarts them as their settings change.

Each sink runs on its own thread and takes work through a bounded queue: handing over never
blocks the main loop, and a sink that falls behind drops (and says so) rather than grow.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Protocol

from batchsight.config import Config
from batchsight.journal import Handoff, Journal
from batchsight.plant_state import Alarm
from batchsight.publishers.base import Delivery, Publisher
from batchsight.publishers.outbox import Outbox
from batchsight.verdicts import Messages

log = logging.getLogger(__name__)


class Sink(Protocol):
    """A plant-floor protocol fed by the alert path (opcua/, sparkplug/)."""

    alarm: str | None

    def start(self) -> None: ...
    def stop(self, timeout: float = 5.0) -> None: ...
    def reconfigure(self, config: Config) -> None: ...
    def committed(self, messages: Messages) -> None: ...
    def status(self, payload: dict[str, Any]) -> None: ...


def _make_opcua(config: Config, journal: Journal) -> Sink:
    from batchsight.opcua import OpcUaServer  # asyncua is imported only when the server is on

    return OpcUaServer(config, journal)


def _make_sparkplug(config: Config, journal: Journal) -> Sink:
    from batchsight.sparkplug.node import SparkplugNode  # so are paho-mqtt and protobuf

    return SparkplugNode(config)


FACTORIES: dict[str, Callable[[Config, Journal], Sink]] = {"opcua": _make_opcua, "sparkplug": _make_sparkplug}


class PlantFloor:
    """The sinks switched on in the configuration, started, stopped and reconfigured together."""

    def __init__(self, config: Config, journal: Journal,
                 factories: dict[str, Callable[[Config, Journal], Sink]] | None = None) -> None:
        self.config, self.journal = config, journal
        self.factories = FACTORIES if factories is None else factories
        self.sinks: dict[str, Sink] = {}
        self._started = False

    def _enabled(self, config: Config) -> set[str]:
        return {name for name in self.factories if getattr(config, name).enabled}

    def start(self) -> None:
        self._started = True
        for name in sorted(self._enabled(self.config)):
            self._open(name)

    def _open(self, name: str) -> None:
        try:
            sink = self.sinks[name] = self.factories[name](self.config, self.journal)
            sink.start()
        except Exception as exc:  # noqa: BLE001 - a missing library must not stop the inspection
            self.sinks.pop(name, None)
            log.error("plant-floor protocol not started", extra={"protocol": name, "error": str(exc)})

    def stop(self, timeout: float = 5.0) -> None:
        self._started = False
        for sink in self.sinks.values():
            sink.stop(timeout)
        self.sinks.clear()

    def reconfigure(self, config: Config) -> None:
        """Start what was switched on, stop what was switched off (without waiting for it), and
        hand the new settings to the rest; each sink restarts itself if its own settings changed."""
        self.config = config
        if not self._started:
            return
        wanted = self._enabled(config)
        for name in sorted(set(self.sinks) - wanted):
            log.info("plant-floor protocol switched off", extra={"protocol": name})
            self.sinks.pop(name).stop(0.0)
        for sink in self.sinks.values():
            sink.reconfigure(config)
        for name in sorted(wanted - set(self.sinks)):
            log.info("plant-floor protocol switched on", extra={"protocol": name})
            self._open(name)

    def committed(self, messages: Messages) -> None:
        """From any thread that hands off (the loop, the event path's stages)."""
        for sink in list(self.sinks.values()):
            sink.committed(messages)

    def status(self, payload: dict[str, Any]) -> None:
        for sink in list(self.sinks.values()):
            sink.status(payload)

    def alarms(self) -> list[str]:
        return [sink.alarm for sink in list(self.sinks.values()) if sink.alarm]


class ObservedOutbox(Outbox):
    """The outbox, telling ``on_committed`` what each hand-off queued once it has committed."""

    def __init__(self, journal: Journal, on_committed: Callable[[Messages], None], **kwargs: Any) -> None:
        super().__init__(journal, **kwargs)
        self._on_committed = on_committed

    @contextmanager
    def handoff(self) -> Iterator[Handoff]:
        with super().handoff() as tx:
            yield tx
        if tx.queued:
            try:
                self._on_committed(tx.queued)
            except Exception:  # a sink's fault never stops the alert path
                log.exception("plant-floor hand-over failed")


class PlantFloorPublisher(Publisher):
    """The chosen publisher (MQTT or Greengrass IPC), with the plant-floor sinks riding along."""

    def __init__(self, config: Config, inner: Publisher, plant: PlantFloor) -> None:
        self.config, self.inner, self.plant = config, inner, plant

    def publish(self, topic: str, payload: dict[str, Any], *, retain: bool = False) -> None:
        if topic == self.config.topic("status"):
            self.plant.status(payload)
            extra = self.plant.alarms()
            if extra:
                alarms = list(payload.get("alarms", []))
                codes = list(payload.get("alarm_codes", []))[:len(alarms)]
                codes += [int(Alarm.OTHER)] * (len(alarms) - len(codes)) + [int(Alarm.PLANT_FLOOR)] * len(extra)
                payload = {**payload, "alarms": (alarms + extra)[:10], "alarm_codes": codes[:10]}
        self.inner.publish(topic, payload, retain=retain)

    def send(self, topic: str, body: bytes, *, retain: bool = False) -> Delivery:
        return self.inner.send(topic, body, retain=retain)

    @property
    def ready(self) -> bool:
        return self.inner.ready

    def _publish(self, topic: str, body: bytes, *, retain: bool) -> None:
        self.inner._publish(topic, body, retain=retain)

    def subscribe(self, topic: str, on_message: Callable[[bytes], None]) -> None:
        self.inner.subscribe(topic, on_message)

    def connect(self) -> None:
        self.inner.connect()
        self.plant.start()

    def close(self) -> None:
        self.plant.stop()
        self.inner.close()

    def reconfigure(self, config: Config) -> None:
        self.config = config
        self.plant.reconfigure(config)
