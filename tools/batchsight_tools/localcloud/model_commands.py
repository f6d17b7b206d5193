"""`batchsight dataset` and `batchsight model` run against the local cloud, as a person types them.

Why a module of its own: the demo makes, publishes and deploys model versions with the real
commands (their ``main(argv)``, in this process), not with a copy of what they do, so the gate,
the staging, the index flip and every check are the ones a quality engineer meets. Each call is
printed as the command line it is (``--endpoint-url`` pointing at the local cloud) with its
output indented below it, so the demo also shows the commands to type against a real stack.
"""
from __future__ import annotations

import io
import shlex
from collections.abc import Callable
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass

INDENT = "      "


@dataclass(frozen=True)
class Outcome:
    """One command: its arguments, exit code and output lines."""

    argv: tuple[str, ...]
    code: int
    out: tuple[str, ...]
    err: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return self.code == 0

    @property
    def command(self) -> str:
        return shlex.join(["batchsight", *self.argv])

    @property
    def error(self) -> str:
        """The one line a failed command printed on stderr (its exit code when it printed none)."""
        return self.err[-1] if self.err else f"{self.command} exited with {self.code}"

    def lines(self) -> list[str]:
        return [f"    $ {self.command}", *(INDENT + line for line in (*self.out, *self.err))]


def _entry(command: str) -> Callable[[list[str]], int]:
    if command == "model":
        from batchsight_tools.models.cli import main as model_main

        return model_main
    if command == "dataset":
        from batchsight_tools.dataset.cli import main as dataset_main

        return dataset_main
    raise ValueError(f"not a model or dataset command: {command}")


def run(*argv: str, echo: bool = True) -> Outcome:
    """``batchsight ARGV`` (``model ...`` or ``dataset ...``) in this process; printed unless ``echo`` is off."""
    main = _entry(argv[0])
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        try:
            code = main(list(argv[1:]))
        except SystemExit as exc:  # argparse's usage errors
            code = exc.code if isinstance(exc.code, int) else 2
    outcome = Outcome(tuple(argv), int(code or 0), tuple(out.getvalue().splitlines()),
                      tuple(err.getvalue().splitlines()))
    if echo:
        print("\n".join(outcome.lines()), flush=True)
    return outcome
