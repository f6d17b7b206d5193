"""Structured logs: one JSON object per line on stderr (Greengrass keeps it in the component log)."""
from __future__ import annotations

import json
import logging
import sys
from datetime import datetime, UTC
from typing import Any

_RESERVED = set(vars(logging.makeLogRecord({})))


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update({k: v for k, v in vars(record).items() if k not in _RESERVED and k != "message"})
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def setup(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("botocore", "boto3", "urllib3", "s3transfer", "watchdog"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def quiet() -> None:
    """For the commands that print a report (status, doctor): no log record reaches the terminal.

    The parts they use log as they do in the component (the MQTT client warns that the broker is
    unreachable); without a handler Python's last-resort one would print those on stderr, in the
    middle of the report. Python's warnings are routed to the same nowhere.
    """
    root = logging.getLogger()
    root.handlers[:] = [logging.NullHandler()]
    logging.captureWarnings(True)
