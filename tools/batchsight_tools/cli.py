"""batchsight: the gateway's commands and the tools, in one command.

    batchsight run|status|doctor ...     the gateway program (python -m batchsight on a device)
    batchsight demo|report|plan ...      tools that run on a person's machine
    batchsight fit|evaluate|serve ...    the detector

'batchsight COMMAND --help' describes a command and its options. Each command runs in this
process, so a signal to batchsight (SIGTERM, Ctrl-C) reaches the command itself.
"""
from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable

# command -> (module with main(argv), whether main takes the command name first, help)
COMMANDS: dict[str, tuple[str, bool, str]] = {
    "run": ("batchsight.cli", True, "run the edge component"),
    "status": ("batchsight.cli", True, "backlog per state from the journal"),
    "doctor": ("batchsight.cli", True, "check folders, journal, AWS resources and broker"),
    "demo": ("batchsight_tools.demo", False, "run the whole flow on this machine (no AWS account)"),
    "report": ("batchsight_tools.report", False,
               "HTML report of a batch or a time range from the final bucket"),
    "plan": ("batchsight_tools.plan", False,
             "batch settings for a latency budget and their expected cost"),
    "dataset": ("batchsight_tools.dataset.cli", False,
                "build a labelled dataset in S3 from folders, file names and operator feedback"),
    "model": ("batchsight_tools.models.cli", False,
              "fit, evaluate, publish, deploy and roll back versions of the detector on S3"),
    "fit": ("batchsight_detector.cli", True, "fit the local detector on normal images"),
    "evaluate": ("batchsight_detector.cli", True,
                 "AUROC, precision/recall and latency of a fitted model"),
    "serve": ("batchsight_detector.serve", False,
              "serve a fitted model over HTTP (/ping, /invocations) for the edge modes"),
}


def _entry(command: str) -> Callable[[list[str]], int]:
    module, with_name, _ = COMMANDS[command]
    main: Callable[[list[str]], int] = importlib.import_module(module).main
    return (lambda rest: main([command, *rest])) if with_name else main


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="batchsight", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (_, _, description) in COMMANDS.items():
        commands.add_parser(name, help=description, add_help=False)
    names = ", ".join(COMMANDS)
    if not argv:
        parser.error(f"give a command: {names} ('batchsight --help' says what each does)")
    if argv[0].startswith("-") and argv[0] not in ("-h", "--help"):
        parser.error(f"unknown option {argv[0]!r}; give a command first ({names}), then its options")
    if argv[0] not in COMMANDS and not argv[0].startswith("-"):
        parser.error(f"unknown command {argv[0]!r}; the commands are {names} "
                     "('batchsight --help' says what each does)")
    args, rest = parser.parse_known_args(argv)
    try:
        return int(_entry(args.command)(rest) or 0)
    except KeyboardInterrupt:  # Ctrl-C during a long fit or plan: no traceback, the shell's code
        print(f"batchsight {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
