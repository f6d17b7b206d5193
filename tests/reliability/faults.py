"""Fault injection for the reliability tests: real faults, none of our own code stubbed.

- ``FaultProxy``: an HTTP proxy between the edge process and moto that throttles like AWS;
- ``mount_tmpfs`` / ``DiskFiller``: a small real file system, and another program filling it;
- ``journal_states`` / ``integrity``: a second SQLite connection on the component's real journal.

The proxy:

The edge program talks to the cloud through ``aws.endpoint_url``; pointing that at
``FaultProxy`` puts a real HTTP hop between the edge and moto. Requests pass through
unchanged until a test turns faults on; then a share of S3 PUTs is answered with S3's
``503 SlowDown`` and a share of SQS calls with SQS' ``RequestThrottled``, byte for byte in
the shape AWS sends (S3: REST-XML error body; SQS: the JSON protocol with the
``x-amzn-query-error`` header of its query-compatible mode). botocore classifies both codes
as throttling (``botocore.retries.standard.ThrottledRetryableChecker``), so its own retries
run first and the component only sees what survives them, as in production.

Which service a request is for comes from the SigV4 credential scope in ``Authorization``
(``…/us-east-1/s3/aws4_request``) and, for the JSON protocols, the ``X-Amz-Target`` header:
the same way moto's single-port server routes them.
"""
from __future__ import annotations

import errno
import http.client
import os
import random
import re
import shutil
import subprocess
import threading
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
import contextlib

_SCOPE = re.compile(r"Credential=[^/]+/\d{8}/[^/]+/([^/]+)/aws4_request")
# Hop-by-hop headers (RFC 9110 section 7.6.1) and the ones we recompute.
_HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer",
        "upgrade", "expect", "content-length"}

S3_SLOW_DOWN = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n'
    b"<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message>"
    b"<RequestId>%(rid)s</RequestId><HostId>%(host)s</HostId></Error>")
SQS_THROTTLED = b'{"__type":"com.amazonaws.sqs#RequestThrottled","message":"Request is throttled."}'


@dataclass
class Faults:
    """What to break: shares (0..1) of S3 PUTs and SQS calls, and what was broken."""

    s3_put: float = 0.0
    sqs: float = 0.0
    injected: dict[str, int] = field(default_factory=lambda: {"s3_put": 0, "sqs": 0})
    passed: dict[str, int] = field(default_factory=dict)


class FaultProxy:
    """A threaded HTTP/1.1 forwarder to ``127.0.0.1:target_port`` that can inject AWS throttling."""

    def __init__(self, target_port: int, *, seed: int = 0) -> None:
        self.target_port = target_port
        self.faults = Faults()
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, and botocore's Expect: 100-continue

            def do_GET(self) -> None:
                proxy._handle(self)

            do_PUT = do_POST = do_DELETE = do_HEAD = do_GET

            def log_message(self, *_: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    # --- control --------------------------------------------------------------------------
    def inject(self, *, s3_put: float = 0.0, sqs: float = 0.0) -> None:
        with self._lock:
            self.faults.s3_put, self.faults.sqs = s3_put, sqs

    def clear(self) -> None:
        self.inject()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    # --- per request ----------------------------------------------------------------------
    @staticmethod
    def _kind(method: str, headers: Any) -> str:
        scope = _SCOPE.search(headers.get("Authorization", ""))
        service = scope.group(1) if scope else "?"
        if service == "s3":
            return f"s3_{method.lower()}"
        return service  # "sqs", "states", …

    def _handle(self, request: BaseHTTPRequestHandler) -> None:
        body = _read_body(request)
        kind = self._kind(request.command, request.headers)
        with self._lock:
            share = {"s3_put": self.faults.s3_put, "sqs": self.faults.sqs}.get(kind, 0.0)
            fail = share > 0 and self._rng.random() < share
            if fail:
                self.faults.injected[kind] += 1
            else:
                self.faults.passed[kind] = self.faults.passed.get(kind, 0) + 1
        if fail:
            self._throttle(request, kind)
            return
        self._forward(request, body)

    def _throttle(self, request: BaseHTTPRequestHandler, kind: str) -> None:
        rid = uuid.uuid4().hex.upper()[:16]
        if kind == "s3_put":
            status, body = 503, S3_SLOW_DOWN % {b"rid": rid.encode(), b"host": uuid.uuid4().hex.encode()}
            headers = {"Content-Type": "application/xml", "x-amz-request-id": rid}
        else:
            status, body = 400, SQS_THROTTLED
            headers = {"Content-Type": "application/x-amz-json-1.0", "x-amzn-RequestId": rid,
                       "x-amzn-query-error": "RequestThrottled;Sender"}
        _respond(request, status, headers, body)

    def _forward(self, request: BaseHTTPRequestHandler, body: bytes) -> None:
        upstream = http.client.HTTPConnection("127.0.0.1", self.target_port, timeout=60)
        try:
            headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP}
            upstream.request(request.command, request.path, body=body if body or request.command in
                             ("PUT", "POST") else None, headers=headers)
            response = upstream.getresponse()
            payload = response.read()
            headers = {k: v for k, v in response.getheaders() if k.lower() not in _HOP}
            if request.command == "HEAD":  # no body, but the object's length is the answer
                headers["Content-Length"] = response.getheader("Content-Length", "0")
            _respond(request, response.status, headers, payload, head=request.command == "HEAD")
        except OSError:
            request.close_connection = True
            with contextlib.suppress(OSError):
                request.send_error(502)
        finally:
            upstream.close()


def _read_body(request: BaseHTTPRequestHandler) -> bytes:
    """The request body, by Content-Length or chunked transfer coding."""
    if request.headers.get("Transfer-Encoding", "").lower() == "chunked":
        chunks = []
        while True:
            size = int(request.rfile.readline().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while request.rfile.readline().strip():  # trailers
                    pass
                return b"".join(chunks)
            chunks.append(request.rfile.read(size))
            request.rfile.readline()
    length = int(request.headers.get("Content-Length") or 0)
    return request.rfile.read(length) if length else b""


def _respond(request: BaseHTTPRequestHandler, status: int, headers: dict[str, str], body: bytes,
             *, head: bool = False) -> None:
    request.send_response(status)
    headers.setdefault("Content-Length", str(len(body)))
    for name, value in headers.items():
        request.send_header(name, value)
    request.end_headers()
    if not head:
        request.wfile.write(body)


def processes(*markers: bytes, parent: int | None = None) -> list[int]:
    """Live (not zombie) processes whose command line holds every marker, children of ``parent``
    when given: how the tests find a component's helper processes, and their orphans."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            status = dict(line.split(":\t", 1) for line in (entry / "status").read_text().splitlines()
                          if ":\t" in line)
        except OSError:
            continue
        if status.get("State", "Z").startswith("Z") or not all(marker in cmdline for marker in markers):
            continue
        if parent is None or int(status["PPid"]) == parent:
            found.append(int(entry.name))
    return found


# --- disks ------------------------------------------------------------------------------------
def mount_tmpfs(folder: Path, size: str) -> None:
    """A real, small file system of its own at ``folder``; skips the test where that is impossible."""
    import pytest

    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root (run the suite as root, as CI does)")
    folder.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(folder)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip() or done.returncode}")


def unmount(folder: Path) -> None:
    """Unmount, lazily if something still holds a file open (a process killed mid-test)."""
    if subprocess.run(["umount", str(folder)], capture_output=True).returncode != 0:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True)


class DiskFiller:
    """Another program filling the disk: keeps ``leave`` bytes free (0: full, ENOSPC) until released.

    A thread tops the filler file up every few milliseconds, so space the component frees
    (retired images) is taken again, as a runaway log or recording on a real gateway would.
    """

    def __init__(self, folder: Path, *, leave: int = 0) -> None:
        self.path = folder / "filler.bin"
        self.leave = leave
        self.enospc = 0  # how often the filler itself hit ENOSPC (the disk was truly full)
        self._stop = threading.Event()
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._top_up()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _top_up(self) -> None:
        while (room := shutil.disk_usage(self.path.parent).free - self.leave) > 0:
            try:
                os.write(self._fd, bytes(min(room, 1 << 20)))
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                self.enospc += 1
                return

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            self._top_up()

    def release(self) -> None:
        """Delete the filler: the space returns at once (a second call does nothing)."""
        if self._stop.is_set():
            return
        self._stop.set()
        self._thread.join(timeout=5)
        os.close(self._fd)
        self.path.unlink(missing_ok=True)


# --- journal ----------------------------------------------------------------------------------
def journal_states(journal: Path) -> dict[str, str]:
    """image_id -> state, read from the real journal file by a second connection (WAL allows it)."""
    import sqlite3

    connection = sqlite3.connect(f"file:{journal}?mode=ro", uri=True, timeout=5)
    try:
        return dict(connection.execute("SELECT image_id, state FROM images").fetchall())
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return {}  # the component is still creating its schema
        raise
    finally:
        connection.close()


def integrity(journal: Path) -> str:
    """SQLite's own verdict on the journal file (``ok`` when nothing is corrupt)."""
    import sqlite3

    connection = sqlite3.connect(journal, timeout=5)
    try:
        return str(connection.execute("PRAGMA integrity_check").fetchone()[0])
    finally:
        connection.close()


# --- kill points ------------------------------------------------------------------------------
_KILL_POINT = '''\
"""Injected by tests/reliability/faults.py (KillPoint): SIGKILL this process at one os call."""
import os
import signal

_CALL = os.environ["BATCHSIGHT_TEST_KILL_CALL"]
_UNDER = os.environ["BATCHSIGHT_TEST_KILL_UNDER"].rstrip("/") + "/"
_WHEN = os.environ["BATCHSIGHT_TEST_KILL_WHEN"]
_ARMED = os.environ["BATCHSIGHT_TEST_KILL_ARMED"]
_real, _unlink = getattr(os, _CALL), os.unlink


def _kill():
    _unlink(_ARMED)  # once per arming: the next start runs through
    os.kill(os.getpid(), signal.SIGKILL)


def _hooked(*args, **kwargs):
    path = os.path.abspath(os.fspath(args[1] if _CALL == "replace" else args[0]))
    hit = path.startswith(_UNDER) and os.path.exists(_ARMED)
    if hit and _WHEN == "before":
        _kill()
    result = _real(*args, **kwargs)
    if hit and _WHEN == "after":
        _kill()
    return result


setattr(os, _CALL, _hooked)
'''


class KillPoint:
    """SIGKILL the edge process at one exact point of its work: when it calls ``os.<call>``
    (``unlink`` or ``replace``) on a path under ``under`` (for ``replace``, the destination),
    just ``before`` or just ``after`` the call.

    Injected through a ``sitecustomize`` on the subprocess' PYTHONPATH (pass ``env`` to ``Edge``):
    the component's code is not changed, only the os function it calls is wrapped, so its own
    code runs exactly as in production up to the kill. ``arm()`` before a start; the kill disarms
    it, so the next start with the same environment runs through.
    """

    def __init__(self, folder: Path, *, call: str, under: Path, when: str) -> None:
        if call not in ("unlink", "replace") or when not in ("before", "after"):
            raise ValueError(f"no kill point {when} os.{call}")
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "sitecustomize.py").write_text(_KILL_POINT)
        self._armed = folder / "armed"
        self.env = {"PYTHONPATH": os.pathsep.join(p for p in (str(folder), os.environ.get("PYTHONPATH")) if p),
                    "BATCHSIGHT_TEST_KILL_CALL": call, "BATCHSIGHT_TEST_KILL_UNDER": str(under),
                    "BATCHSIGHT_TEST_KILL_WHEN": when, "BATCHSIGHT_TEST_KILL_ARMED": str(self._armed)}

    def arm(self) -> None:
        self._armed.touch()

    @property
    def fired(self) -> bool:
        """The process was killed at the point since the last ``arm()``."""
        return not self._armed.exists()
