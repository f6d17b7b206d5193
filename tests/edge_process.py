"""The edge component as a real process, and what the end-to-end and reliability tests do
around it: its config against the local cloud, a camera writing into its drop folder, an HMI
listening on the broker, and the result documents it leads to."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from batchsight_tools.localcloud.hmi import Subscriber
from batchsight_tools.localcloud.stack import CREDENTIALS
from tests.support import CloudFixture

if TYPE_CHECKING:
    from batchsight_tools.synth import SynthImage

SITE, LINE, DEVICE = "test-site", "line-7", "gw-e2e"


def write_config(tmp: Path, cloud: CloudFixture, port: int) -> Path:
    """tmp/edge.yaml: drop and work folders under tmp, the local cloud's stack, the broker on
    port, and short batch and poll intervals so a test takes seconds."""
    from batchsight_tools.localcloud.broker import protocol_for_port

    outputs = cloud.outputs
    path = tmp / "edge.yaml"
    path.write_text(yaml.safe_dump({
        "site": SITE, "line": LINE, "device": DEVICE,
        "drop_folder": str(tmp / "drop"), "work_folder": str(tmp / "work"),
        "aws": {"source_bucket": outputs.source_bucket, "final_bucket": outputs.final_bucket,
                "queue_url": outputs.queue_url, "state_machine_arn": outputs.state_machine_arn,
                "endpoint_url": outputs.endpoint_url},
        "batch": {"interval_seconds": 2.0, "max_images": 10, "max_age_seconds": 3.0},
        "ingest": {"stable_seconds": 0.5, "min_side": 64},
        "results": {"poll_seconds": 0.5},
        "mqtt": {"port": port, "protocol": protocol_for_port(port)},  # amqtt speaks only 3.1.1
    }))
    return path


class Edge:
    """The component as Greengrass would run it: its own process, stopped with signals."""

    def __init__(self, config: Path, log: Path, env: dict[str, str] | None = None) -> None:
        env = {**os.environ, **CREDENTIALS, **(env or {})}
        env.pop("AWS_ENDPOINT_URL", None)
        self.process = subprocess.Popen([sys.executable, "-m", "batchsight", "run", "--config", str(config)],
                                        stdout=log.open("ab"), stderr=subprocess.STDOUT, env=env)

    def stop(self, timeout: float = 20) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=timeout)

    def reload(self) -> None:
        """SIGHUP: the component reads its configuration file again (a new model is swapped in)."""
        self.process.send_signal(signal.SIGHUP)


def edit_config(path: Path, **groups: dict[str, object]) -> None:
    """Change settings in the YAML file of a running component (then ``Edge.reload``)."""
    data = yaml.safe_load(path.read_text())
    for group, values in groups.items():
        data[group] = {**data.get(group, {}), **values}
    path.write_text(yaml.safe_dump(data))


@dataclass
class ShadowHmi(Subscriber):
    """An HMI that also keeps the shadow model's figures (``.../inspection/shadow``)."""

    shadows: list[dict[str, Any]] = field(default_factory=list)

    def _on_message(self, topic: str, payload: bytes, **kwargs: Any) -> None:
        if topic.endswith("/inspection/shadow"):
            self.shadows.append(json.loads(payload))
        else:
            super()._on_message(topic, payload, **kwargs)


def listen(port: int, *, shadow: bool = False) -> Subscriber:
    """An HMI subscribed to everything the component publishes for inspection, started (``shadow``:
    a ShadowHmi, which keeps the shadow model's figures too)."""
    kind = ShadowHmi if shadow else Subscriber
    subscriber = kind(port, f"factory/{SITE}/{LINE}/{DEVICE}/inspection/#", echo=False)
    subscriber.start()
    return subscriber


def start_camera(frames: Sequence[SynthImage], drop: Path, gap: Callable[[], float]) -> threading.Thread:
    """A camera writing the frames into drop one by one, ``gap()`` seconds after each, on a
    thread of its own; join it to know the last frame is written."""
    def run() -> None:
        for frame in frames:
            (drop / frame.path.name).write_bytes(frame.path.read_bytes())
            time.sleep(gap())

    thread = threading.Thread(target=run, name="camera")
    thread.start()
    return thread


def result_keys(cloud: CloudFixture) -> list[str]:
    """The result documents in the final bucket for this test's line."""
    listed = cloud.client("s3").list_objects_v2(Bucket=cloud.outputs.final_bucket,
                                                Prefix=f"results/{SITE}/{LINE}/{DEVICE}/")
    return [o["Key"] for o in listed.get("Contents", []) if o["Key"].endswith(".json")]


class Operator:
    """An HMI operator answering alerts on ``.../inspection/feedback``; keeps the replies."""

    def __init__(self, port: int) -> None:
        from awscrt import io as crt_io, mqtt as crt_mqtt

        self.replies: list[dict[str, Any]] = []
        self.base = f"factory/{SITE}/{LINE}/{DEVICE}/inspection"
        loop = crt_io.EventLoopGroup(1)
        bootstrap = crt_io.ClientBootstrap(loop, crt_io.DefaultHostResolver(loop))
        self._qos = crt_mqtt.QoS.AT_LEAST_ONCE
        self._connection = crt_mqtt.Connection(client=crt_mqtt.Client(bootstrap, None), host_name="127.0.0.1",
                                               port=port, client_id=f"hmi-operator-{os.getpid()}")
        self._connection.connect().result(10)
        self._connection.subscribe(f"{self.base}/feedback/response", self._qos,
                                   callback=lambda topic, payload, **_: self.replies.append(json.loads(payload))
                                   )[0].result(10)

    def answer(self, image_id: str, verdict: str, **fields: str) -> None:
        body = json.dumps({"v": 1, "image_id": image_id, "verdict": verdict, "operator": "op-1", **fields})
        self._connection.publish(f"{self.base}/feedback", body.encode(), self._qos)[0].result(10)

    def close(self) -> None:
        self._connection.disconnect().result(10)
