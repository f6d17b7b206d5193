"""python -m batchsight: run the component, show its status, check the installation.

These are the gateway program's own commands. On a development machine the batchsight
command (batchsight_tools.cli) offers them next to the tools (demo, report, plan, fit, ...).
'batchsight COMMAND --help' describes a command and its options.

Exit codes: 0 done; 1 a failure the configuration did not cause (doctor found a problem, no
journal yet); 2 a usage or configuration error, said in one line on stderr.
"""
from __future__ import annotations

import argparse
import json
import os
import sqlite3
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from batchsight import logs
from batchsight.config import Config, ConfigError

if TYPE_CHECKING:
    from batchsight.greengrass import GreengrassIpc

RUN = """Run the edge component: watch the drop folder, batch images to the cloud (or judge them
with the local detector), pull results and publish alerts on MQTT, until SIGTERM or Ctrl-C.
SIGHUP reads the configuration file again and applies it (a new inference.model is swapped in
without stopping). Logs are JSON lines on stderr. Greengrass runs it with --greengrass (its
deployments arrive over IPC); elsewhere give --config."""
STATUS = """Show what the gateway holds, from its journal and files (works with the component
stopped): images per state, the judgements, what waits for a batch and since when, the last
batch, the bytes held against the quota, the free space, and the alarms and the cloud link's
state as the running component last wrote them (with their age)."""
DOCTOR = """Check everything the component needs and say what to fix: the folders, the journal,
the AWS endpoints, the clock, the credentials, the buckets, the queue, the state machine, the
MQTT broker and, in the edge modes, the local detector. One cause gives one FAIL; the checks it
makes meaningless are SKIP. Exit 0 when nothing fails, 1 otherwise."""


class CommandError(Exception):
    """A failure the user did not cause by a wrong value (exit 1), said in one line."""


def _load(args: argparse.Namespace) -> tuple[Config, GreengrassIpc | None]:
    """The configuration and, on a device, the IPC adapter; the wiring is imported only when a
    command needs it (it brings boto3 and the MQTT client)."""
    from batchsight import wiring

    return wiring.configuration(args.config, greengrass=args.greengrass)


def _run(args: argparse.Namespace) -> int:
    from batchsight import wiring
    from batchsight.config_folders import Folder, folder_state
    from batchsight.runtime import Component

    config, ipc = _load(args)
    for path, setting in ((config.drop_folder, "drop_folder"), (config.work_folder, "work_folder")):
        state, detail = folder_state(path, setting)
        if state is Folder.UNUSABLE:
            raise ConfigError(f"setting {setting}: {detail}")
    logs.setup(config.log_level)
    # SIGHUP reads the file again: --config's, or the recipe-written one when IPC did not answer
    source = args.config or (os.environ.get("BATCHSIGHT_CONFIG") if ipc is None else None)
    component = Component(config, ipc=ipc, config_file=Path(source) if source else None)
    component.install_signal_handlers()
    wiring.run(component, ipc)
    return 0


def _status(args: argparse.Namespace) -> int:
    from batchsight.journal import Journal
    from batchsight.status_view import gather, render

    logs.quiet()
    config, _ = _load(args)
    if not config.journal_path.is_file():
        raise CommandError(f"no journal at {config.journal_path}: the component has not run with this "
                           "work_folder yet (start it, or check work_folder)")
    try:
        journal = Journal(config.journal_path)
        try:
            status = gather(config, journal, now=time.time())
        finally:
            journal.close()
    except (sqlite3.Error, OSError) as exc:
        raise CommandError(f"cannot read the journal {config.journal_path} ({exc}): run as the component's "
                           "user, and `batchsight doctor` to check it") from exc
    print(json.dumps(status, indent=2) if args.json else render(status))
    return 0


def _doctor(args: argparse.Namespace) -> int:
    from batchsight import wiring
    from batchsight.cloud_errors import on_greengrass
    from batchsight.doctor import report, run_checks

    logs.quiet()
    config, ipc = _load(args)
    checks = run_checks(config, wiring.aws_clients(config), greengrass=args.greengrass or on_greengrass(),
                        greengrass_ipc=ipc is not None)
    print(report(checks))
    return 0 if all(c.ok for c in checks) else 1


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="batchsight", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run the edge component", description=RUN)
    status = commands.add_parser("status", help="what the gateway holds and what the component last knew",
                                 description=STATUS)
    doctor = commands.add_parser("doctor", help="check folders, journal, AWS and broker; say what to fix",
                                 description=DOCTOR)
    for command in (run, status, doctor):
        command.add_argument("--config", metavar="FILE",
                             help="the YAML configuration file; the README's configuration table lists every "
                                  "setting (required unless --greengrass)")
        command.add_argument("--greengrass", action="store_true",
                             help="take the configuration from Greengrass over IPC, on a device, or else from "
                                  "the file named by BATCHSIGHT_CONFIG (default: off, use --config)")
    status.add_argument("--json", action="store_true",
                        help="print JSON for programs, with ISO-8601 times in UTC (default: off, a table "
                             "for people)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return {"run": _run, "status": _status, "doctor": _doctor}[args.command](args)
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    except CommandError as exc:
        print(f"batchsight {args.command}: {exc}", file=sys.stderr)
        return 1
