"""The component runs as an unprivileged user and writes nowhere but its drop and work folders.

Greengrass runs it as the component user (``RequiresPrivilege: false`` in the recipe, e.g.
ggc_user). Here it runs as ``nobody``, with only the drop and work folders its own, through a
whole drop-to-alert round trip; then every file on the machine that ``nobody`` created or
changed since the start must lie inside those two folders.
"""
from __future__ import annotations

import os
import pwd
import shutil
import site
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from batchsight_tools.localcloud.hmi import Subscriber
from batchsight_tools.localcloud.stack import CREDENTIALS
from batchsight_tools.synth import generate
from tests.edge_process import write_config
from tests.support import CloudFixture, wait_for

pytestmark = pytest.mark.integration
USER = "nobody"


@pytest.fixture
def base() -> Iterator[Path]:
    """Outside pytest's 0700 temporary folders, so that the other user can reach its own."""
    if os.geteuid() != 0:
        pytest.skip("starting the component as another user needs root (CI runs as root)")
    folder = Path(tempfile.mkdtemp(prefix="batchsight-unprivileged-"))
    folder.chmod(0o755)
    yield folder
    mounts = sorted((folder / "mnt").glob("*"))
    for mount in mounts:
        subprocess.run(["umount", str(mount)], check=False)
    if any(os.path.ismount(mount) for mount in mounts):  # never delete through a bind mount
        raise RuntimeError(f"could not unmount the bind mounts under {folder / 'mnt'}; unmount them by hand")
    shutil.rmtree(folder, ignore_errors=True)


def _reachable_by_others(path: Path) -> bool:
    """Every folder on the way can be traversed by any user (what exec and open need)."""
    return all(parent.stat().st_mode & 0o001 for parent in [path, *path.parents] if parent.is_dir())


def _visible(path: Path, base: Path) -> Path:
    """``path`` itself when other users can reach it, else a read-only bind mount of it under
    ``base/mnt`` (an interpreter or a checkout under /root, say), so the test runs anywhere."""
    if _reachable_by_others(path):
        return path
    (base / "mnt").mkdir(exist_ok=True)
    mount = base / "mnt" / str(len(list((base / "mnt").iterdir())))
    mount.mkdir()
    result = subprocess.run(["mount", "--bind", "-o", "ro", str(path), str(mount)], capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip(f"{path} is not reachable by other users and cannot be bind-mounted: {result.stderr.strip()}")
    return mount


def _program_for(user: pwd.struct_passwd, base: Path) -> dict[str, str]:
    """The interpreter and the environment (PYTHONPATH: the program, then the venv's packages;
    the interpreter's own libpython first) as the other user sees them."""
    prefix = _visible(Path(sys.base_prefix), base)
    repo = _visible(Path(__file__).resolve().parents[2], base)
    packages = _visible(Path(site.getsitepackages()[0]), base)
    program = {"PYTHON": str(prefix / "bin" / f"python{sys.version_info.major}.{sys.version_info.minor}"),
               "PYTHONPATH": f"{repo}/component:{repo}/cloud/src:{packages}",
               "LD_LIBRARY_PATH": str(prefix / "lib")}
    probe = subprocess.run([program["PYTHON"], "-c", "import ssl, batchsight.runtime, awscrt, boto3"],
                           user=user.pw_uid, group=user.pw_gid, extra_groups=[], cwd=base, capture_output=True,
                           text=True, timeout=60, env={"PATH": os.environ.get("PATH", ""), **program})
    if probe.returncode != 0:
        pytest.skip(f"{USER} cannot run the program here: {probe.stderr.strip()[-300:]}")
    return program


def _files_written_by(uid: int, since: float, roots: list[str]) -> list[str]:
    """Every path under these roots (each on its own file system) owned by uid and changed since."""
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(since - 1))
    found = []
    for root in roots:
        result = subprocess.run(["find", root, "-xdev", "-user", str(uid), "-newermt", stamp, "-print"],
                                capture_output=True, text=True, timeout=120)
        found += result.stdout.split()
    return sorted(set(found))


def test_component_runs_unprivileged_and_writes_only_its_folders(local_cloud: CloudFixture, mqtt_broker: Any,
                                                                hmi: Subscriber, base: Path) -> None:  # noqa: F811
    user = pwd.getpwnam(USER)
    drop, work = base / "drop", base / "work"
    for folder in (drop, work):
        folder.mkdir()
        os.chown(folder, user.pw_uid, user.pw_gid)
    config = write_config(base, local_cloud, mqtt_broker.port)
    config.chmod(0o644)
    assert yaml.safe_load(config.read_text())["work_folder"] == str(work)
    program = _program_for(user, base)
    started = time.time()
    env = {**os.environ, **CREDENTIALS, **program, "HOME": str(work)}
    env.pop("AWS_ENDPOINT_URL", None)
    edge = subprocess.Popen([program["PYTHON"], "-m", "batchsight", "run", "--config", str(config)],
                            user=user.pw_uid, group=user.pw_gid, extra_groups=[], cwd=base, env=env,
                            stdout=(base / "edge.log").open("ab"), stderr=subprocess.STDOUT)
    try:
        frames = generate(base / "camera", count=4, size=128, seed=71)
        for frame in frames:
            (drop / frame.path.name).write_bytes(frame.path.read_bytes())
        wait_for(lambda: len(hmi.results) >= len(frames), 90, "every result, from an unprivileged component")
        uids = next(line for line in Path(f"/proc/{edge.pid}/status").read_text().splitlines()
                    if line.startswith("Uid:")).split()[1:]
        assert set(uids) == {str(user.pw_uid)}, f"real/effective/saved/fs uids {uids}"
    finally:
        edge.send_signal(signal.SIGTERM)
        assert edge.wait(timeout=20) == 0, (base / "edge.log").read_text()[-2000:]
    roots = sorted({"/", "/tmp", "/dev/shm", "/var/tmp"})
    outside = [p for p in _files_written_by(user.pw_uid, started, roots)
               if not (p == str(drop) or p.startswith(f"{drop}/") or p == str(work) or p.startswith(f"{work}/"))]
    assert outside == [], f"the component wrote outside its drop and work folders: {outside[:20]}"
