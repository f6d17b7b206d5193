"""`batchsight serve` as a person runs it: the console script, a real port, signals, JSON logs.

`batchsight` runs its commands in its own process, so SIGTERM or Ctrl-C (SIGINT) to it must
stop the server and close its port within a few seconds, not leave a server behind.
"""
from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from batchsight_tools.localcloud.stack import free_port
from tests.support import wait_for

SCRIPT = Path(sys.executable).with_name("batchsight")   # the console script pip installed
STOP_SECONDS = 5.0


def _serve(*args: str, cwd: Path) -> subprocess.Popen[str]:
    command = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "batchsight_tools.cli"]
    return subprocess.Popen([*command, "serve", *args], cwd=cwd, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _ping(port: int) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return error.code
    except OSError:
        return 0   # not listening (yet)


def _log(stderr: str) -> list[dict[str, Any]]:
    """Every stderr line as JSON, with the gateway's fields."""
    entries = [json.loads(line) for line in stderr.splitlines() if line.strip()]
    assert entries and all({"time", "level", "logger", "message"} <= set(e) for e in entries), stderr
    return entries


def _port_is_free(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    except ConnectionRefusedError:
        pass
    else:
        return False
    with socket.socket() as listener:   # a new server can take the port (as serve binds: SO_REUSEADDR)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", port))
        listener.listen()
    return True


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=lambda s: signal.Signals(s).name)
def test_a_signal_stops_serve_and_frees_its_port(signum: int, fitted_model: Path, tmp_path: Path) -> None:
    port = free_port()
    server = _serve("--model", str(fitted_model), "--port", str(port), cwd=tmp_path)
    try:
        wait_for(lambda: _ping(port) == 200 or server.poll() is not None, 60, "serve to answer /ping")
        assert server.poll() is None, server.communicate()
        server.send_signal(signum)
        started = time.monotonic()
        stdout, stderr = server.communicate(timeout=STOP_SECONDS)
        stopped_in = time.monotonic() - started
    finally:
        if server.poll() is None:
            server.kill()
            server.communicate()
    assert server.returncode == 0 and stopped_in < STOP_SECONDS, stderr
    assert _port_is_free(port)
    log = _log(stderr)
    assert log[0]["message"] == "model loaded" and log[0]["model"] == str(fitted_model)
    assert log[1]["message"].startswith(f"serving on http://127.0.0.1:{port}") and log[1]["port"] == port
    assert log[-2]["message"] == "stopping" and log[-2]["signal"] == signal.Signals(signum).name
    assert log[-1]["message"] == "stopped" and stdout == ""


def test_waiting_for_a_model_answers_503_logs_why_once_then_serves_it(fitted_model: Path,
                                                                       tmp_path: Path) -> None:
    model, port = tmp_path / "models" / "detector.npz", free_port()
    server = _serve("--model", str(model), "--port", str(port), "--wait-for-model", cwd=tmp_path)
    try:
        wait_for(lambda: _ping(port) == 503 or server.poll() is not None, 60, "serve to answer /ping")
        assert [_ping(port) for _ in range(3)] == [503] * 3
        model.parent.mkdir()
        shutil.copy(fitted_model, model)   # a deployment delivers it: no restart
        wait_for(lambda: _ping(port) == 200, 10, "serve to load the model once it is there")
        server.terminate()
        _, stderr = server.communicate(timeout=STOP_SECONDS)
    finally:
        if server.poll() is None:
            server.kill()
            server.communicate()
    log = _log(stderr)
    errors = [e for e in log if e["level"] == "ERROR"]
    assert len(errors) == 1 and errors[0]["message"] == f"model file {model} cannot be read: No such file or directory"
    assert errors[0]["logger"] == "batchsight.serve"
    assert [e["healthy"] for e in log if e["message"].startswith("serving on")] == [False]
    assert any(e["message"] == "model loaded" for e in log) and server.returncode == 0
