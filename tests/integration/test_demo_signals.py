"""SIGTERM or SIGINT to a running ``batchsight demo`` ends every process it started and removes its folders.

The demo runs in edge-first mode, so it has every kind of child: the MQTT broker, the edge
program, and the edge's own children (the local detector server, the image decoder); the moto
server and the HMI run inside the demo's process. Once the camera is dropping images, the
demo gets the signal. Afterwards no process it or its children started is alive (found in
/proc by pid and by command line: they all name the demo's temp folder), none of its ports
answers, and its temp folder is empty.
"""
from __future__ import annotations

import re
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from tests.integration.test_demo import DEMO, SMALL, demo_environment, scratch
from tests.reliability.faults import processes

pytestmark = pytest.mark.integration


def _descendants(root: int) -> dict[int, bytes]:
    """pid -> command line of every live process below ``root``."""
    found: dict[int, bytes] = {}
    parents = [root]
    while parents:
        children = [pid for parent in parents for pid in processes(parent=parent)]
        for pid in children:
            try:
                found[pid] = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                continue
        parents = children
    return found


def _alive(pid: int, cmdline: bytes) -> bool:
    """The same process still there (a reused pid has another command line), not a zombie."""
    return pid in processes(cmdline) if cmdline else False


def _answers(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def _every_child_running(pid: int, *, deadline: float) -> dict[int, bytes]:
    """The demo's descendants once the broker, the edge and the edge's detector all run (a loaded
    machine may still be starting, or restarting, the detector when the camera begins)."""
    while True:
        children = _descendants(pid)
        kinds = b"\n".join(children.values()).replace(b"\0", b" ")
        wanted = (b"mosquitto" if b"mosquitto" in kinds else b"localcloud.broker", b"batchsight run",
                  b"batchsight_detector.serve")
        missing = [kind for kind in wanted if kind not in kinds]
        if not missing:
            return children
        assert time.monotonic() < deadline, f"no {missing[0]!r} among {list(children.values())}"
        time.sleep(0.2)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_ends_every_child_of_the_demo_and_its_temp_folder(tmp_path: Path, signum: int) -> None:
    log = (tmp_path / "demo.out").open("w+")
    demo = subprocess.Popen([*DEMO, *SMALL, "--count", "40", "--gap", "0.5", "--inference", "edge-first"],
                            stdout=log, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
                            env=demo_environment(tmp_path))
    try:
        deadline = time.monotonic() + 120
        while "camera dropping images" not in (tmp_path / "demo.out").read_text():
            assert demo.poll() is None and time.monotonic() < deadline, (tmp_path / "demo.out").read_text()
            time.sleep(0.2)
        output = (tmp_path / "demo.out").read_text()
        ports = sorted({int(p) for p in re.findall(r"127\.0\.0\.1:(\d+)", output)})
        assert len(ports) == 3, output  # moto (the model commands' --endpoint-url too), the broker, the edge's detector
        time.sleep(3)  # mid-run: images are on their way
        children = _every_child_running(demo.pid, deadline=time.monotonic() + 30)
        assert all(_answers(port) for port in ports)

        demo.send_signal(signum)
        _, stderr = demo.communicate(timeout=60)
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()
    assert demo.returncode == 128 + signum, stderr
    assert "Traceback" not in stderr + (tmp_path / "demo.out").read_text()
    assert stderr.strip() == (f"batchsight demo: stopped by {signal.Signals(signum).name}: every process it "
                              "started has ended and its temp folders are removed")
    left = [cmdline for pid, cmdline in children.items() if _alive(pid, cmdline)]
    assert left == [], f"still running after the demo ended: {left}"
    assert processes(str(scratch(tmp_path)).encode()) == [], "a process still names the demo's temp folder"
    assert [port for port in ports if _answers(port)] == []
    assert list(scratch(tmp_path).iterdir()) == []
