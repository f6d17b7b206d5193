"""A file's path below the drop folder, written as one file name: how staging and quarantine
name what they hold ("cam2/0001.jpg" becomes "cam2%2F0001.jpg"), and back."""
from __future__ import annotations

# A file name is at most 255 bytes: staging puts 33 before a flat name (and a copy from another
# file system 9 more, durable.PARTIAL), quarantine up to 20 before it and 11 (".reason.txt") after,
# or 9 more before it (".pending-", an entry on its way in).
_MAX_FLAT_BYTES = 213
_CUT = "…"


def flat(name: str) -> str:
    """A name from a subfolder as one file name: '/' written as %2F (and '%' as %25, so
    ``unflat`` gives back exactly the name). A name too long for one file name loses its
    start, marked by '…', and keeps its end, which names the file."""
    escaped = _escape(name)
    if len(escaped.encode()) <= _MAX_FLAT_BYTES:
        return escaped
    budget, start, size = _MAX_FLAT_BYTES - len(_CUT.encode()), len(name), 0
    while start > 0 and size + len(_escape(name[start - 1]).encode()) <= budget:
        start -= 1
        size += len(_escape(name[start]).encode())
    return _CUT + _escape(name[start:])


def _escape(name: str) -> str:
    return name.replace("%", "%25").replace("/", "%2F")


def may_be_cut(flat_name: str) -> bool:
    """True when ``flat_name`` may have lost its start (``unflat`` cannot give the name back)."""
    return flat_name.startswith(_CUT)


def unflat(flat_name: str) -> str:
    return flat_name.replace("%2F", "/").replace("%25", "%")
