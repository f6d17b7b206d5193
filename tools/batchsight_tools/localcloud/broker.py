"""A real MQTT broker on 127.0.0.1: mosquitto when installed, else amqtt (pure Python).

Both run as child processes, so tests can stop and restart the broker (``stop()`` then
``start()`` again, on the same port) like a plant's network does, and the component talks to
it over real TCP. mosquitto speaks MQTT 5 and 3.1.1 and can also run a TLS listener
(``tls=BrokerTls(...)``, client certificates required by default) and refuse anonymous
clients (``users={"name": "password"}``); amqtt speaks MQTT 3.1.1 only.

Its configuration and log live in ``folder`` (the caller's, kept) or in a temporary
``batchsight-broker-*`` folder of its own, which ``close()`` (and leaving a ``with`` block)
removes; ``stop()`` keeps it, so a stopped broker can be started again.
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
from dataclasses import dataclass
from pathlib import Path

from batchsight_tools.localcloud.stack import free_port

# Brokers started by this process, by port: lets a config writer pick the protocol they speak.
_RUNNING: dict[int, MqttBroker] = {}


@dataclass(frozen=True)
class BrokerTls:
    """PEM files of the broker's TLS listener; ``require_certificate``: mutual TLS."""

    ca_file: Path
    cert_file: Path
    key_file: Path
    require_certificate: bool = True


class MqttBroker:
    def __init__(self, *, port: int | None = None, prefer: str | None = None,
                 tls: BrokerTls | None = None, users: dict[str, str] | None = None,
                 folder: Path | None = None) -> None:
        self.port = port or free_port()
        prefer = prefer or os.environ.get("BATCHSIGHT_BROKER", "mosquitto")
        self.kind = "mosquitto" if prefer == "mosquitto" and _mosquitto() else "amqtt"
        if (tls or users) and self.kind != "mosquitto":
            raise RuntimeError("TLS listeners and password files need mosquitto (apt-get install -y mosquitto)")
        self.tls = tls
        self.users = users or {}
        self._process: subprocess.Popen[bytes] | None = None
        self._own_folder = folder is None
        self._folder = Path(tempfile.mkdtemp(prefix="batchsight-broker-")) if folder is None else folder
        self._folder.mkdir(parents=True, exist_ok=True)

    @property
    def protocols(self) -> tuple[str, ...]:
        """The MQTT versions this broker speaks, as ``mqtt.protocol`` spells them."""
        return ("5", "3.1.1") if self.kind == "mosquitto" else ("3.1.1",)

    @property
    def log_path(self) -> Path:
        return self._folder / "broker.log"

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def start(self, timeout: float = 15.0) -> MqttBroker:
        log = self.log_path.open("ab")
        self._process = subprocess.Popen(self._command(), stdout=log, stderr=subprocess.STDOUT)
        log.close()  # the child holds its own descriptor
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"{self.kind} exited at start; see {self.log_path}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                _RUNNING[self.port] = self
                return self
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"{self.kind} did not listen on 127.0.0.1:{self.port} within {timeout} s")

    def _command(self) -> list[str]:
        if self.kind == "mosquitto":
            conf = self._folder / "mosquitto.conf"
            lines = [f"listener {self.port} 127.0.0.1",
                     f"allow_anonymous {'false' if self.users else 'true'}",
                     "persistence false", "max_inflight_messages 100", "log_dest stderr",
                     "log_type error", "log_type warning", "log_type notice", "log_type information",
                     "connection_messages true"]
            if os.geteuid() == 0:  # as root mosquitto would switch to its own user, who cannot read our files
                lines.append("user root")
            if self.tls:
                lines += [f"cafile {self.tls.ca_file}", f"certfile {self.tls.cert_file}",
                          f"keyfile {self.tls.key_file}",
                          f"require_certificate {'true' if self.tls.require_certificate else 'false'}"]
            if self.users:
                lines.append(f"password_file {self._password_file()}")
            conf.write_text("\n".join(lines) + "\n")
            return [str(_mosquitto()), "-c", str(conf)]
        return [sys.executable, "-m", "batchsight_tools.localcloud.broker", "--port", str(self.port)]

    def _password_file(self) -> Path:
        path = self._folder / "passwords"
        if not path.exists():
            tool = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"
            path.touch(mode=0o600)
            for user, password in self.users.items():
                subprocess.run([tool, "-b", str(path), user, password], check=True, capture_output=True)
        return path

    def stop(self) -> None:
        if _RUNNING.get(self.port) is self:
            del _RUNNING[self.port]
        if self._process and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._process = None

    def close(self) -> None:
        """Stop, and remove the temporary folder the broker made for itself (not a caller's)."""
        self.stop()
        if self._own_folder:
            shutil.rmtree(self._folder, ignore_errors=True)

    def __enter__(self) -> MqttBroker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


def protocol_for_port(port: int) -> str:
    """``mqtt.protocol`` for the broker this process started on ``port``: MQTT 5 unless it only
    speaks 3.1.1 (amqtt); "5" for a broker started elsewhere."""
    broker = _RUNNING.get(port)
    return broker.protocols[0] if broker else "5"


def _mosquitto() -> str | None:
    return shutil.which("mosquitto") or next(
        (p for p in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto") if Path(p).exists()), None)


def _serve_amqtt(port: int) -> None:
    """The fallback broker (MQTT 3.1.1), run as ``python -m batchsight_tools.localcloud.broker``."""
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
