"""The gateway's client of `batchsight serve` keeps one connection per thread, and finds a new one
when the server it knew is gone: a real `batchsight serve` child on a real port, killed and started
again as the component's detector process is.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from batchsight.local_detector import DetectorNotListening, LocalDetector
from batchsight_tools.localcloud.stack import free_port
from batchsight_tools.synth import generate_training_set
from tests.support import wait_for


class Child:
    """`batchsight serve` as the component starts it: its own process on a loopback port."""

    def __init__(self, model: Path, port: int) -> None:
        self.port = port
        self.process = subprocess.Popen([sys.executable, "-m", "batchsight_detector.serve", "--model", str(model),
                                         "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        probe = LocalDetector(f"http://127.0.0.1:{port}", timeout=5)
        wait_for(lambda: _healthy(probe) or self.process.poll() is not None, 60, "serve to answer /ping")
        probe.close()
        assert self.process.poll() is None, "serve ended at start"

    def kill(self) -> None:
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait()


def _healthy(client: LocalDetector) -> bool:
    try:
        client.check()
    except DetectorNotListening:
        return False
    return True


def _our_ports(port: int) -> set[int]:
    """The local ports of this process's open connections to ``port``."""
    return {c.laddr.port for c in psutil.Process().net_connections("tcp")
            if c.raddr and c.raddr.port == port and c.status == psutil.CONN_ESTABLISHED}


@pytest.fixture
def child(fitted_model: Path) -> Iterator[Child]:
    server = Child(fitted_model, free_port())
    yield server
    if server.process.poll() is None:
        server.kill()


@pytest.fixture(scope="module")
def images() -> list[bytes]:
    return generate_training_set(4, size=128, seed=11)


def test_one_connection_carries_every_image(child: Child, images: list[bytes]) -> None:
    client = LocalDetector(f"http://127.0.0.1:{child.port}", timeout=10)
    ports = set()
    for image in images:
        assert isinstance(client.detect(image, "jpg")["IsAnomalous"], bool)
        ports |= _our_ports(child.port)
    client.check()
    assert len(ports) == 1 and _our_ports(child.port) == ports, "a new connection was opened for an image"
    client.close()
    assert not _our_ports(child.port)


def test_a_restarted_server_is_reached_on_a_new_connection(child: Child, fitted_model: Path,
                                                            images: list[bytes]) -> None:
    client = LocalDetector(f"http://127.0.0.1:{child.port}", timeout=10)
    client.detect(images[0], "jpg")
    before = _our_ports(child.port)
    child.kill()  # the detector process dies; the component starts another on the same port
    with pytest.raises(DetectorNotListening, match=rf"^detector at http://127.0.0.1:{child.port} not reachable: "):
        client.detect(images[1], "jpg")  # nobody listens: said as before, after one try on a new connection
    again = Child(fitted_model, child.port)
    try:
        assert isinstance(client.detect(images[1], "jpg")["IsAnomalous"], bool)
        assert _our_ports(child.port) and _our_ports(child.port) != before
    finally:
        again.kill()


def test_a_connection_the_server_dropped_is_replaced_once(child: Child, fitted_model: Path,
                                                           images: list[bytes]) -> None:
    client = LocalDetector(f"http://127.0.0.1:{child.port}", timeout=10)
    client.detect(images[0], "jpg")
    child.kill()
    again = Child(fitted_model, child.port)  # back before the next image: the kept connection is stale
    try:
        assert isinstance(client.detect(images[1], "jpg")["IsAnomalous"], bool)
        assert len(_our_ports(child.port)) == 1
    finally:
        again.kill()
