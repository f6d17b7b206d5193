"""Detection started while the journal is still taking the image in, so its verdict is ready when it may go out.

An image's verdict may leave the gateway only once the journal holds the image, durable and
``validated`` (every pixel decoded in the decoder's child): that is what lets a crash lose
nothing. Those steps (the durability barrier, the journal's commit, the pixel check) take a few
milliseconds, and the detector takes longer; done one after the other, an alert waits for their
sum. So ingest offers each image's bytes here as soon as it has inspected them, the judge's
thread asks the detector at once (edge modes, detector healthy), and when the image is
validated the judge records the answer kept here instead of asking again.

Nothing here is durable and nothing is decided here. An answer is used only:
- for the image it was asked for (the key is the image id, the SHA-256 of its bytes);
- by the model that gave it: a model swapped in meanwhile judges the image again;
- after the journal's own steps, exactly as before: an image the pixel check refuses goes to
  quarantine, and its answer is dropped unused.

A crash loses the answers, and the judge asks again, as it always did. Only a few images are
held (``OFFERED`` images, ``OFFERED_BYTES`` in all): under a backlog the rest are judged the
usual way, so the gateway's memory stays bounded.
"""
from __future__ import annotations

import threading
from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import Any

from batchsight.local_detector import LocalDetector
from batchsight.model_package import ModelIdentity

OFFERED = 4                      # images waiting for their early detection; beyond, ingest's bytes are not kept
OFFERED_BYTES = 8 * 1024 * 1024  # and their bytes in all: a few large images are enough to fill the wait
ANSWERS = 64                     # answers kept for images not validated yet (a refused one is never taken)


@dataclass(frozen=True)
class Offered:
    image_id: str
    data: bytes
    ext: str


@dataclass(frozen=True)
class _Answer:
    client: LocalDetector
    identity: ModelIdentity | None
    answer: dict[str, Any]


class DetectAhead:
    """Images offered by ingest (any thread) and the detector's answers on them (the judge's thread)."""

    def __init__(self) -> None:
        self._offered: deque[Offered] = deque()
        self._bytes = 0
        self._answers: OrderedDict[str, _Answer] = OrderedDict()
        self._lock = threading.Lock()

    def offer(self, image_id: str, data: bytes, ext: str) -> bool:
        """Keep an inspected image's bytes for its early detection; False when enough wait already."""
        with self._lock:
            if len(self._offered) >= OFFERED or self._bytes + len(data) > OFFERED_BYTES:
                return False
            self._offered.append(Offered(image_id, data, ext))
            self._bytes += len(data)
            return True

    def next(self) -> Offered | None:
        """The oldest image offered, now handed to the caller; None when none waits."""
        with self._lock:
            if not self._offered:
                return None
            offered = self._offered.popleft()
            self._bytes -= len(offered.data)
            return offered

    def keep(self, offered: Offered, client: LocalDetector, identity: ModelIdentity | None,
             answer: dict[str, Any]) -> None:
        """The answer ``client`` (serving ``identity``) gave on an offered image."""
        with self._lock:
            self._answers[offered.image_id] = _Answer(client, identity, answer)
            while len(self._answers) > ANSWERS:
                self._answers.popitem(last=False)

    def take(self, image_id: str, client: LocalDetector, identity: ModelIdentity | None) -> dict[str, Any] | None:
        """The answer kept for this image if the same server and model gave it, else None (ask now)."""
        with self._lock:
            kept = self._answers.pop(image_id, None)
        if kept is None or kept.client is not client or kept.identity != identity:
            return None
        return kept.answer

    def clear(self) -> None:
        """Forget everything (the detector failed: the images are judged elsewhere, or again)."""
        with self._lock:
            self._offered.clear()
            self._bytes = 0
            self._answers.clear()
