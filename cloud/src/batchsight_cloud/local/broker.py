"""A real MQTT broker on 127.0.0.1: mosquitto when installed, else amqtt (pure Python).

Both run as child processes, so tests can stop and restart the broker like a plant's
network does, and the component talks to it over real TCP.
"""
from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from batchsight_cloud.local.stack import free_port


class MqttBroker:
    def __init__(self, *, port: int | None = None, prefer: str | None = None) -> None:
        self.port = port or free_port()
        prefer = prefer or os.environ.get("BATCHSIGHT_BROKER", "mosquitto")
        self.kind = "mosquitto" if prefer == "mosquitto" and _mosquitto() else "amqtt"
        self._process: subprocess.Popen[bytes] | None = None
        self._folder = Path(tempfile.mkdtemp(prefix="batchsight-broker-"))

    def start(self, timeout: float = 15.0) -> "MqttBroker":
        log = (self._folder / "broker.log").open("ab")
        self._process = subprocess.Popen(self._command(), stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"{self.kind} exited at start; see {self._folder / 'broker.log'}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return self
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"{self.kind} did not listen on 127.0.0.1:{self.port} within {timeout} s")

    def _command(self) -> list[str]:
        if self.kind == "mosquitto":
            conf = self._folder / "mosquitto.conf"
            conf.write_text(f"listener {self.port} 127.0.0.1\nallow_anonymous true\n"
                            "persistence false\nmax_inflight_messages 100\n")
            return [str(_mosquitto()), "-c", str(conf)]
        return [sys.executable, "-m", "batchsight_cloud.local.broker", "--port", str(self.port)]

    def stop(self) -> None:
        if self._process and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._process = None

    def __enter__(self) -> "MqttBroker":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _mosquitto() -> str | None:
    return shutil.which("mosquitto") or next(
        (p for p in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto") if Path(p).exists()), None)


def _serve_amqtt(port: int) -> None:
    """The fallback broker (MQTT 3.1.1), run as ``python -m batchsight_cloud.local.broker``."""
    import asyncio

    from amqtt.broker import Broker

    config = {
        "listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{port}"}},
        "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
    }

    async def serve() -> None:
        broker = Broker(config)
        await broker.start()
        await asyncio.Event().wait()

    asyncio.run(serve())


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=_serve_amqtt.__doc__)
    parser.add_argument("--port", type=int, required=True)
    _serve_amqtt(parser.parse_args().port)
