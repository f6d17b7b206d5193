"""The floor of drop-to-alert at the edge: what any gateway must do for one image, done in this process.

Per image, in turn: read the file (from the page cache, as the edge does right after the camera
wrote it), decode every pixel (``images.check_pixels``, what the decoder child runs), judge it
with the same model file (``batchsight serve``'s own ``answer``, without HTTP), and publish its
verdict QoS 1 on the same broker with the component's MQTT client, waiting for the PUBACK.
Nothing durable, no process boundary, no HTTP, no queue between the steps: less than any gateway
that keeps its promises can do, so the edge's latency is read against it.

The images come at the camera's rate, as the edge gets them: an image that arrives alone, a
tenth of a second after the last, meets cold caches (the model's bank of normal images is 2 MB)
and a core that was idle or running something else, and is judged slower than in a loop where
one image follows the other at once (in-process and through ``batchsight serve`` alike; the
detail line gives both). A floor taken back to back would hold the edge to a pace the camera does
not set; it is still measured, and reported beside the paced one (``back to back``).
"""
from __future__ import annotations

import json
import os
import statistics
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from batchsight.config import IngestSettings
from batchsight.images import check_pixels
from batchsight.publishers.mqtt import MqttPublisher
from batchsight_detector.serve import ModelSlot, answer
from batchsight_tools.localcloud.broker import protocol_for_port

STEPS = ("read", "decode", "detect", "publish")
Item = TypeVar("Item")


@dataclass
class Floor:
    """Seconds per image (the sum of the steps), each step's seconds, and CPU seconds per image."""

    seconds: list[float] = field(default_factory=list)
    steps: dict[str, list[float]] = field(default_factory=lambda: {step: [] for step in STEPS})
    cpu_per_image: float = 0.0
    back_to_back: list[float] = field(default_factory=list)  # seconds per image, one right after the other

    def describe(self) -> str:
        """``read 0.05 + decode 2.1 + detect 5.3 + publish 0.4 ms (medians); back to back 4.1 ms``."""
        steps = " + ".join(f"{step} {statistics.median(values) * 1000:.2g}" for step, values in self.steps.items())
        return f"{steps} ms (medians); back to back {statistics.median(self.back_to_back) * 1000:.2g} ms"


def steady(items: Iterable[Item], rate: float) -> Iterator[Item]:
    """Each item at its time on a steady schedule of ``rate`` a second (not sleeps that add up)."""
    started = time.monotonic()
    for n, item in enumerate(items):
        pause = started + n / rate - time.monotonic()
        if pause > 0:
            time.sleep(pause)
        yield item


def measure_floor(frames: list[Path], model: Path, broker_port: int, topic: str, rate: float) -> Floor:
    """The floor of each frame at ``rate`` a second, after one warm-up pass of the first (first
    allocations, the model's load) and a pass back to back."""
    slot = ModelSlot(model)
    slot.load()
    publisher = MqttPublisher(host="127.0.0.1", port=broker_port, client_id=f"bench-floor-{os.getpid()}",
                              protocol=protocol_for_port(broker_port), will_topic=None)
    publisher.connect()
    deadline = time.monotonic() + 10.0
    while not publisher.ready:
        if time.monotonic() > deadline:
            raise RuntimeError(f"the floor's MQTT client did not connect to 127.0.0.1:{broker_port}")
        time.sleep(0.01)
    floor, hot = Floor(), Floor()
    try:
        _one(frames[0], slot, publisher, topic, Floor())
        for frame in frames:
            _one(frame, slot, publisher, topic, hot)
        cpu_started = time.thread_time()
        for frame in steady(frames, rate):
            _one(frame, slot, publisher, topic, floor)
        floor.cpu_per_image = (time.thread_time() - cpu_started) / len(frames)
        floor.back_to_back = hot.seconds
    finally:
        publisher.close()
    return floor


def _one(frame: Path, slot: ModelSlot, publisher: MqttPublisher, topic: str, floor: Floor) -> None:
    marks = [time.perf_counter()]
    data = frame.read_bytes()
    marks.append(time.perf_counter())
    check_pixels(data, "jpg", IngestSettings())
    marks.append(time.perf_counter())
    status, result = answer(slot, data, "image/jpeg")
    if status != 200:
        raise RuntimeError(f"the floor's detection of {frame.name} failed: {result}")
    marks.append(time.perf_counter())
    publisher.publish(topic, {"v": 1, "file_name": frame.name, "judged_by": "edge",
                              "is_anomalous": bool(result["IsAnomalous"]),
                              "confidence": float(result["Confidence"]), "model": json.dumps(result["Model"])})
    marks.append(time.perf_counter())
    for step, started, ended in zip(STEPS, marks, marks[1:], strict=False):
        floor.steps[step].append(ended - started)
    floor.seconds.append(marks[-1] - marks[0])
