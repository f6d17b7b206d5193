"""The shadow model's agreement figures on ``.../inspection/shadow``.

In the edge modes a candidate model (``inference.shadow_model``) judges every image beside the
model in use (edge_judge.py); its verdicts are never alerted nor published as results, only
compared. The journal counts the comparisons per pair of versions (journal_shadow.py); this
publishes each pair's running totals every ``inference.shadow_report_every`` comparisons and
at least once a minute while comparisons come in, retained: the figures are a state (how has
version 4 done against version 3 so far), so a dashboard that connects later sees them at once,
and a message lost in a broker outage is made good by the next. The payload
(contracts/schemas/mqtt_shadow.schema.json) is flat, like every payload PLCs read.
"""
from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from typing import Any

from batchsight.alerts import PAYLOAD_VERSION
from batchsight.config import Config
from batchsight.journal import Journal
from batchsight.journal_shadow import ShadowPair, ShadowTally
from batchsight.live_config import Configured
from batchsight.publishers import Publisher, PublishError

log = logging.getLogger(__name__)
REPORT_SECONDS = 60.0


def _utc(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def shadow_payload(config: Config, tally: ShadowTally) -> dict[str, Any]:
    pair = tally.pair
    disagreements = tally.normal_to_anomalous + tally.anomalous_to_normal
    return {"v": PAYLOAD_VERSION, "site": config.site, "line": config.line, "device": config.device,
            "model": pair.model, "model_version": pair.model_version,
            "shadow_model": pair.shadow_model, "shadow_model_version": pair.shadow_model_version,
            "compared": tally.compared, "agreements": tally.agreements,
            "agreement_rate": round(tally.agreements / tally.compared, 4) if tally.compared else 0.0,
            "disagreements": disagreements,
            "normal_to_anomalous": tally.normal_to_anomalous, "anomalous_to_normal": tally.anomalous_to_normal,
            "since": _utc(tally.first_at), "updated_at": _utc(tally.updated_at)}


class ShadowReporter(Configured):
    def __init__(self, config: Config, journal: Journal, publisher: Publisher) -> None:
        self.config = config
        self.journal = journal
        self.publisher = publisher
        self._last: dict[ShadowPair, float] = {}  # monotonic time of each pair's last report

    def publish_due(self, mono: float | None = None) -> int:
        """Publish the figures of every pair that is due; how many were published."""
        mono = time.monotonic() if mono is None else mono
        published = 0
        for tally in self.journal.shadow_tallies(unreported=True):  # least recently updated first: the
            last = self._last.setdefault(tally.pair, mono)          # pair in use is retained last
            due = (tally.compared - tally.reported >= self.config.inference.shadow_report_every
                   or mono - last >= REPORT_SECONDS)
            if not due:
                continue
            try:
                self.publisher.publish(self.config.topic("shadow"), shadow_payload(self.config, tally), retain=True)
            except PublishError as exc:  # running totals: the next report makes up for it
                log.warning("shadow figures not delivered; sent with the next", extra={"error": str(exc)})
                return published
            self.journal.shadow_reported(tally.pair, tally.compared)
            self._last[tally.pair] = mono
            published += 1
            log.info("shadow figures", extra={"model": f"{tally.pair.model} {tally.pair.model_version}",
                                              "shadow": f"{tally.pair.shadow_model} {tally.pair.shadow_model_version}",
                                              "compared": tally.compared, "agreements": tally.agreements})
        return published
