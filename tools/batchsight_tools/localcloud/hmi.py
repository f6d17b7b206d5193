"""An HMI stand-in: subscribes to a device's inspection topics and keeps what arrives.

Used by the demo to print alerts, by bench/edge.py to time results, and by the tests to check
what the plant would see.
"""
from __future__ import annotations

import json
import os
import statistics
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from awscrt import io, mqtt


@dataclass
class Subscriber:
    """Listens on the device's inspection topics like an HMI would."""

    port: int
    topic_filter: str
    echo: bool = True
    results: dict[str, tuple[float, dict[str, Any]]] = field(default_factory=dict)
    alerts: dict[str, tuple[float, dict[str, Any]]] = field(default_factory=dict)
    corrections: dict[str, tuple[float, dict[str, Any]]] = field(default_factory=dict)
    duplicates: int = 0
    batches: list[dict[str, Any]] = field(default_factory=list)
    statuses: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        loop = io.EventLoopGroup(1)
        bootstrap = io.ClientBootstrap(loop, io.DefaultHostResolver(loop))
        self._connection = mqtt.Connection(client=mqtt.Client(bootstrap, None), host_name="127.0.0.1",
                                           port=self.port, client_id=f"batchsight-hmi-{os.getpid()}")

    def start(self) -> None:
        self._connection.connect().result(10)
        future, _ = self._connection.subscribe(self.topic_filter, mqtt.QoS.AT_LEAST_ONCE,
                                               callback=self._on_message)
        future.result(10)

    def _on_message(self, topic: str, payload: bytes, **_: Any) -> None:
        kind = topic.rsplit("/", 1)[-1]
        if kind not in ("result", "alert", "correction", "batch", "status"):
            return  # operator feedback and its replies are not the HMI's to read
        message = json.loads(payload)
        with self._lock:
            if kind in ("batch", "status"):
                (self.batches if kind == "batch" else self.statuses).append(message)
                return
            target = {"result": self.results, "alert": self.alerts, "correction": self.corrections}[kind]
            if message["image_id"] in target:
                self.duplicates += 1
            target[message["image_id"]] = (time.time(), message)
        if kind in ("alert", "correction") and self.echo:
            print(f"  {kind.upper():<10} {message['file_name']:<18} confidence {message['confidence']:.2f}"
                  f"  {'at the edge' if message['judged_by'] == 'edge' else 'batch ' + message['batch_id']}",
                  flush=True)

    def stop(self) -> None:
        self._connection.disconnect().result(5)


def percentile(values: Sequence[float], percent: int) -> float:
    """A percentile (1 to 99) of drop-to-result latencies, as the demo and bench/edge.py print them."""
    return statistics.quantiles(values, n=100)[percent - 1] if len(values) > 1 else values[0]
