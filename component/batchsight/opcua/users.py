"""The OPC UA server's user names and passwords (``opcua.users_file``), without asyncua.

One ``name:password`` per line (``#`` starts a comment). The password may be written as a hash
instead, ``name:pbkdf2_sha256$ITERATIONS$SALT_HEX$HASH_HEX``, made by ``hash_password``:

    python -c "from batchsight.opcua.users import hash_password as h; print(h('secret'))"

The file is read again when it changes, so adding a user needs no restart. Comparisons take
constant time; passwords are never logged.
"""
from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
from pathlib import Path

log = logging.getLogger(__name__)
SCHEME = "pbkdf2_sha256"
ITERATIONS = 200_000


def hash_password(password: str, *, iterations: int = ITERATIONS, salt: bytes | None = None) -> str:
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    return f"{SCHEME}${iterations}${salt.hex()}${digest.hex()}"


def _matches(stored: str, given: str) -> bool:
    if stored.startswith(f"{SCHEME}$"):
        try:
            _, iterations, salt, digest = stored.split("$")
            computed = hashlib.pbkdf2_hmac("sha256", given.encode(), bytes.fromhex(salt), int(iterations))
        except ValueError:
            return False
        return hmac.compare_digest(computed.hex(), digest)
    return hmac.compare_digest(stored.encode(), given.encode())


class UserFile:
    """The users file, read again when its modification time or size changes."""

    def __init__(self, path: str) -> None:
        self.path = Path(path) if path else None
        self._seen: tuple[int, int] | None = None
        self._users: dict[str, str] = {}

    def _load(self) -> dict[str, str]:
        if self.path is None:
            return {}
        try:
            info = os.stat(self.path)
            if (info.st_mtime_ns, info.st_size) != self._seen:
                users = {}
                for line in self.path.read_text(encoding="utf-8").splitlines():
                    if line.strip() and not line.lstrip().startswith("#") and ":" in line:
                        name, _, secret = line.partition(":")
                        users[name.strip()] = secret.rstrip("\r\n")
                self._users, self._seen = users, (info.st_mtime_ns, info.st_size)
        except (OSError, UnicodeDecodeError) as exc:
            log.error("OPC UA users file unreadable; keeping the users read before",
                      extra={"path": str(self.path), "error": str(exc)})
        return self._users

    def check(self, name: str, password: str) -> bool:
        stored = self._load().get(name)
        return stored is not None and _matches(stored, password)

    @property
    def empty(self) -> bool:
        return not self._load()
