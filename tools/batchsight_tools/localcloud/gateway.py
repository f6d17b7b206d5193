"""The gateway program as the demo and the benchmarks run it: ``python -m batchsight run``.

It runs as its own process, exactly the program Greengrass runs, from a configuration file
as a device holds it, with its output in a log file. It takes its AWS endpoint from that
file only: an ``AWS_ENDPOINT_URL`` in our environment (set by LocalCloud) is not passed on.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from batchsight_tools.localcloud.stack import CREDENTIALS


def write_config(settings: dict[str, Any], path: Path) -> Path:
    """``settings`` as the YAML file the program reads; returns ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(settings, sort_keys=False))
    return path


def start_gateway(config: Path, log_path: Path) -> subprocess.Popen[bytes]:
    """Start the program on ``config``; stdout and stderr are appended to ``log_path``."""
    env = {**os.environ, **CREDENTIALS}
    env.pop("AWS_ENDPOINT_URL", None)  # the edge takes its endpoint from its own config
    return subprocess.Popen([sys.executable, "-m", "batchsight", "run", "--config", str(config)],
                            stdout=log_path.open("ab"), stderr=subprocess.STDOUT, env=env)


def stop_gateway(process: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    """SIGTERM, as Greengrass stops a component; killed if it has not ended within ``timeout``."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
