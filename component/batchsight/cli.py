"""``python -m batchsight``: run the component, show its status, check the installation.

These are the gateway program's own commands. On a development machine the ``batchsight``
command (batchsight_tools.cli) offers them next to the tools (demo, report, plan, fit, ...).
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from typing import TYPE_CHECKING

from batchsight import logs
from batchsight.config import Config, ConfigError

if TYPE_CHECKING:
    from batchsight.greengrass import GreengrassIpc


def _load(args: argparse.Namespace) -> tuple[Config, GreengrassIpc | None]:
    """The configuration and, on a device, the IPC adapter; the wiring is imported only when a
    command needs it (it brings boto3 and the MQTT client)."""
    from batchsight import wiring

    return wiring.configuration(args.config, greengrass=args.greengrass)


def _run(args: argparse.Namespace) -> int:
    from batchsight import wiring
    from batchsight.runtime import Component

    config, ipc = _load(args)
    logs.setup(config.log_level)
    component = Component(config, ipc=ipc)
    component.install_signal_handlers()
    wiring.run(component, ipc)
    return 0


def _status(args: argparse.Namespace) -> int:
    from batchsight.journal import Journal

    config, _ = _load(args)
    if not config.journal_path.exists():
        print(f"no journal at {config.journal_path}: the component has not run yet")
        return 1
    journal = Journal(config.journal_path)
    waiting, oldest = journal.waiting()
    usage = shutil.disk_usage(config.work_folder)
    print(json.dumps({"counts": journal.counts(), "judgements": journal.judgements(), "waiting_for_batch": waiting,
                      "oldest_waiting_age_seconds": round(time.time() - oldest, 1) if oldest else None,
                      "last_batch": journal.last_batch(),
                      "held_bytes": journal.pending_bytes(), "quota_bytes": config.disk.quota_bytes,
                      "work_folder_free_bytes": usage.free}, indent=2))
    journal.close()
    return 0


def _doctor(args: argparse.Namespace) -> int:
    from batchsight import wiring
    from batchsight.doctor import report, run_checks

    config, _ = _load(args)
    checks = run_checks(config, wiring.aws_clients(config))
    print(report(checks))
    return 0 if all(c.ok for c in checks) else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="batchsight", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run the edge component")
    status = commands.add_parser("status", help="backlog per state from the journal")
    doctor = commands.add_parser("doctor", help="check folders, journal, AWS resources and broker")
    for command in (run, status, doctor):
        command.add_argument("--config", help="YAML configuration file")
        command.add_argument("--greengrass", action="store_true",
                             help="take the configuration from Greengrass (on a device)")
    args = parser.parse_args(argv)
    try:
        return {"run": _run, "status": _status, "doctor": _doctor}[args.command](args)
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
