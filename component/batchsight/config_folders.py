"""Whether the folders the configuration names can be used, and what to do when they cannot.

The component creates a missing drop or work folder itself when it starts (the watcher and the
journal make them with their parents), so a folder that does not exist yet is fine as long as
it can be made; a path that is a file, or a folder this user cannot write, is not. ``run``
refuses to start on such a folder (a configuration error) and doctor reports it.
"""
from __future__ import annotations

import enum
import getpass
import os
from pathlib import Path


class Folder(enum.Enum):
    READY = "ready"          # a folder this user can write
    CREATABLE = "creatable"  # missing; the component creates it when it starts
    UNUSABLE = "unusable"    # a file, or not writable: a person must fix it


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid {os.geteuid()}"


def _writable(path: Path) -> bool:
    return os.access(path, os.W_OK | os.X_OK)


def folder_state(path: Path, setting: str) -> tuple[Folder, str]:
    """The folder's state and a sentence for the person who must act on it."""
    if path.is_dir():
        if _writable(path):
            return Folder.READY, str(path)
        return Folder.UNUSABLE, (f"{path} is not writable by {_user()}: give it to the component's user "
                                 f"(chown) or fix its mode")
    if os.path.lexists(path):
        what = "a broken link" if path.is_symlink() and not path.exists() else "a file"
        return Folder.UNUSABLE, f"{path} is {what}, not a folder: point {setting} at a folder, or move it away"
    parent = path.parent
    while not os.path.lexists(parent) and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        return Folder.UNUSABLE, f"{path} cannot be created: {parent} is a file, not a folder: fix {setting}"
    if not _writable(parent):
        return Folder.UNUSABLE, (f"{path} does not exist and {_user()} cannot create it in {parent}: create it "
                                 f"(mkdir -p {path}) and give it to the component's user")
    return Folder.CREATABLE, f"{path} does not exist yet: the component creates it when it starts"
