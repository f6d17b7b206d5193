"""The template tools that cannot share the project's venv, each installed once into .tools/.

aws-sam-cli pins watchdog 4, which the gateway cannot use; checkov 3.3.30 pins
boto3==1.35.49, packaging<24 and networkx<2.7, which would downgrade the boto3 the gateway is
tested with. So each gets a venv of its own under .tools/ (about 630 MB together, downloaded
on the first test run; README's test section says so), unless the command is on PATH.
"""
from __future__ import annotations

import shutil
import subprocess
import sys

from tests.support import REPO

SAM_CLI = "aws-sam-cli==1.170.0"
CHECKOV = "checkov==3.3.30"


def venv_tool(command: str, requirement: str) -> str:
    """The command on PATH, else from .tools/<command>-venv, installed there the first time."""
    found = shutil.which(command)
    if found:
        return found
    venv = REPO / ".tools" / f"{command}-venv"
    executable = venv / "bin" / command
    if not executable.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "pip"), "install", "--quiet", requirement], check=True, timeout=900)
    return str(executable)


def sam() -> str:
    return venv_tool("sam", SAM_CLI)


def checkov() -> str:
    return venv_tool("checkov", CHECKOV)
