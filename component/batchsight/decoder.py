"""Decode images in a child process, so that what a decoder costs, or breaks, stays out of the component.

Decoding is the one step that runs third-party C code (libjpeg, zlib, through Pillow) on
bytes from the camera. In a child process of its own:

- it never holds the component's GIL. On a thread, decoding a backlog of small images cost
  ingest half its speed, because every syscall ingest made handed the GIL to the decoder;
  here it costs one pipe round trip per image.
- a crash or a stall on one hostile file ends the child, not the component. The child is
  started again and the image tried once more. An image that kills or stalls the decoder
  twice goes to quarantine with that reason; one failure could be a kill from outside.
- its memory goes back when the line is quiet: the verifier closes it when idle.

Protocol, one JSON line each way per image. The request is ``{"path", "ext", "limits"}``.
The answer is one of:
- ``{"ok": true}``: every pixel decodes;
- ``{"reason": ...}``: it does not decode, and why;
- ``{"missing": true}``: the file is gone;
- ``{"error": ...}``: the file could not be read just now.

The child ends at EOF on its stdin, so it ends with the component even after a kill -9, quietly
even with a request in hand. It ignores SIGINT and SIGTERM: a stop signal sent to the whole
process group must not look like a crash while the component finishes the image in hand.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import select
import signal
import subprocess
import sys
import time
from collections import Counter, deque
from collections.abc import Generator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from batchsight.config import IngestSettings
from batchsight.images import InvalidImage, check_pixels

log = logging.getLogger(__name__)
ATTEMPTS = 2             # a decoder that dies this often on one image: the image is the cause
TIMEOUT_SECONDS = 60.0   # per image; the largest image allowed (4096 px a side) decodes in about 1 s
CLOSE_SECONDS = 5.0
WINDOW = 8               # requests in flight: the pipe's round trip (60 us) overlaps the decoding


class DecoderFailed(Exception):
    """The child died or stalled on a request; the message says how."""


@dataclass(frozen=True)
class Verdict:
    reason: str | None = None   # why the image does not decode; None: every pixel does
    missing: bool = False       # the file is gone


class Decoder:
    """The component's side: starts the child on first use and again after a failure."""

    def __init__(self, *, timeout: float = TIMEOUT_SECONDS, command: list[str] | None = None) -> None:
        self.timeout = timeout
        self.command = command or [sys.executable, "-m", __name__]
        self.process: subprocess.Popen[bytes] | None = None
        self._answers = b""  # read from the child, not yet taken: a read may bring several answers
        self._interrupted = False

    def decode_many(self, files: Sequence[tuple[str, str]],
                    limits: IngestSettings) -> Generator[Verdict, None, None]:
        """A verdict per (path, ext), in order, with up to WINDOW requests in flight so the child
        never waits for us. Raises OSError when a file cannot be read now (try again later).

        The child answers in order, so a failure belongs to the oldest unanswered request: that
        one counts an attempt; the others are sent again to the new child without counting.
        """
        waiting = deque(enumerate(files))
        sent: deque[tuple[int, tuple[str, str]]] = deque()
        attempts: Counter[int] = Counter()
        request_limits = dataclasses.asdict(limits)
        try:
            while waiting or sent:
                try:
                    while waiting and len(sent) < WINDOW:
                        sent.append(waiting.popleft())
                        path, ext = sent[-1][1]
                        self._send({"path": path, "ext": ext, "limits": request_limits})
                    answer = self._receive()
                except DecoderFailed as failure:
                    if self._interrupted:
                        return  # stopping: what is left is decoded at the next start
                    failed = sent.popleft()
                    attempts[failed[0]] += 1
                    log.warning("image decoder failed; it starts again for the next try",
                                extra={"path": failed[1][0], "failure": str(failure), "attempt": attempts[failed[0]]})
                    waiting.extendleft(reversed(sent))  # to the new child, in order, not counted
                    sent.clear()
                    if attempts[failed[0]] < ATTEMPTS:
                        waiting.appendleft(failed)
                    else:
                        yield Verdict(reason=f"the image decoder failed on it {ATTEMPTS} times, last: {failure}")
                    continue
                yield _verdict(answer, sent.popleft()[1][0])
        finally:
            if sent and self.process is not None:  # answers on their way belong to requests nobody waits for
                self._end("")

    def interrupt(self) -> None:
        """Kill the child now, from another thread: a stop must not wait for a stalled decode.
        What ``decode_many`` was doing ends without a verdict for the images left."""
        self._interrupted = True
        process = self.process
        if process is not None:
            process.kill()  # Popen.kill polls first: never a signal to a reused pid

    def close(self) -> None:
        """End the child at EOF, as the protocol says; kill it if it does not end in time."""
        if self.process is None:
            return
        process, self.process, self._answers = self.process, None, b""
        with contextlib.suppress(BrokenPipeError):
            process.stdin.close()  # type: ignore[union-attr]
        try:
            process.wait(timeout=CLOSE_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        process.stdout.close()  # type: ignore[union-attr]

    def _send(self, request: dict[str, Any]) -> None:
        process = self._running()
        try:
            process.stdin.write(json.dumps(request).encode() + b"\n")  # type: ignore[union-attr]
            process.stdin.flush()  # type: ignore[union-attr]
        except BrokenPipeError:
            raise DecoderFailed(self._end("")) from None

    def _receive(self) -> dict[str, Any]:
        """The next answer line. The pipe's file descriptor is read here, never through Python's
        buffered reader, so an answer that came with the one before it is never left in a
        buffer select cannot see."""
        assert self.process is not None and self.process.stdout is not None
        deadline = time.monotonic() + self.timeout
        while b"\n" not in self._answers:
            ready, _, _ = select.select([self.process.stdout], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                raise DecoderFailed(self._end(f"no answer within {self.timeout:g} s"))
            chunk = os.read(self.process.stdout.fileno(), 65536)
            if not chunk:
                raise DecoderFailed(self._end(""))
            self._answers += chunk
        line, self._answers = self._answers.split(b"\n", 1)
        answer: dict[str, Any] = json.loads(line)
        return answer

    def _running(self) -> subprocess.Popen[bytes]:
        """The child, started now if there is none or it ended while idle (not an image's doing)."""
        if self.process is not None and self.process.poll() is not None:
            self._end("")
        if self.process is None:
            self.process = subprocess.Popen(self.command, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
            log.debug("image decoder started", extra={"pid": self.process.pid})
        return self.process

    def _end(self, why: str) -> str:
        """Kill and reap the child; ``why``, or how it ended."""
        process, self.process, self._answers = self.process, None, b""
        assert process is not None
        if process.poll() is None:
            process.kill()
        code = process.wait()
        for pipe in (process.stdin, process.stdout):
            with contextlib.suppress(BrokenPipeError):
                pipe.close()  # type: ignore[union-attr]
        return why or _how_it_ended(code)


def _how_it_ended(code: int) -> str:
    if code >= 0:
        return f"exited with code {code}"
    try:
        return f"killed by {signal.Signals(-code).name}"
    except ValueError:  # a real-time signal has no name of its own
        return f"killed by signal {-code}"


def _verdict(answer: dict[str, Any], path: str) -> Verdict:
    if "error" in answer:
        raise OSError(f"cannot read {path} to decode it: {answer['error']}")
    return Verdict(reason=answer.get("reason"), missing=bool(answer.get("missing")))


def _answer(request: dict[str, Any]) -> dict[str, Any]:
    try:
        check_pixels(Path(request["path"]).read_bytes(), request["ext"], IngestSettings(**request["limits"]))
    except FileNotFoundError:
        return {"missing": True}
    except OSError as exc:
        return {"error": str(exc)}
    except InvalidImage as exc:
        return {"reason": str(exc)}
    return {"ok": True}


def main() -> None:
    """The child: answer each request line until EOF.

    A component killed in the middle of a request leaves the child a cut line, or nobody to read
    its answer (EPIPE): either way it ends quietly, with no traceback in the component's log.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        for line in sys.stdin:
            if not line.endswith("\n"):
                return  # cut short by the component's death
            print(json.dumps(_answer(json.loads(line))), flush=True)
    except BrokenPipeError:
        # Python flushes stdout again at exit; pointed at /dev/null, that flush cannot fail too
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


if __name__ == "__main__":
    main()
