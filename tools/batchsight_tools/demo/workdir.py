"""The demo's work folder: a temp folder removed at the end, or the one --keep names, kept.

Why a module of its own: everything the demo writes (model, drop folder, edge journal, broker
configuration, logs) goes under this one folder, so removing it is all the clean-up there is on
disk; a marker file lets a later ``--keep`` of the same folder clear it without ever clearing a
folder of the user's.
"""
from __future__ import annotations

import logging
import shutil
import tempfile
from contextlib import ExitStack
from pathlib import Path

MARKER = ".batchsight-demo"
PREFIX = "batchsight-demo-"


def work_folder(keep: Path | None, cleanup: ExitStack) -> Path:
    """A fresh work folder; unless it is ``keep``, ``cleanup`` removes it. The demo's own log
    (cloud.log: moto, the Lambda handlers) goes into it while the demo runs."""
    if keep is None:
        work = Path(tempfile.mkdtemp(prefix=PREFIX))
        cleanup.callback(shutil.rmtree, work, ignore_errors=True)
    else:
        work = keep.resolve()
        if work.is_dir():   # empty, or an earlier demo's (options checked the marker)
            for child in work.iterdir():
                shutil.rmtree(child) if child.is_dir() and not child.is_symlink() else child.unlink()
        work.mkdir(exist_ok=True)
    (work / MARKER).write_text("made by batchsight demo; a later --keep of this folder clears it\n")
    handler = logging.FileHandler(work / "cloud.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    if root.level > logging.WARNING or root.level == logging.NOTSET:
        root.setLevel(logging.WARNING)
    cleanup.callback(_close_log, handler)
    return work


def _close_log(handler: logging.Handler) -> None:
    logging.getLogger().removeHandler(handler)
    handler.close()
