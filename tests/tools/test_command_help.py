"""The help a person reads first: `batchsight --help`, every option of fit, evaluate, serve, plan
and report, and bench/cost.py, which must print its tables on a machine without matplotlib.
"""
from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from batchsight_detector import cli as detector_cli
from batchsight_detector import serve
from batchsight_tools import plan
from batchsight_tools.costmodel import default_day, write_trace
from batchsight_tools.report import cli as report_cli
from tests.support import REPO

# Runs a script with matplotlib made unimportable, as on a machine that never installed it.
WITHOUT_MATPLOTLIB = """
import runpy, sys

class NoMatplotlib:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] == "matplotlib":
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, NoMatplotlib())
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""

MORNING = (6 * 3600.0, 9 * 3600.0)  # seconds of the default day: the first three hours of its morning shift


def _cost_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_cost", REPO / "bench" / "cost.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    actions = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(actions[0].choices) if actions else {}


def _parsers() -> dict[str, argparse.ArgumentParser]:
    return {**_subcommands(detector_cli.build_parser()), "serve": serve.build_parser(),
            "plan": plan.build_parser(), "report": report_cli.build_parser(),
            "bench/cost.py": _cost_module().build_parser()}


@pytest.mark.parametrize("command", ["fit", "evaluate", "serve", "plan", "report", "bench/cost.py"])
def test_every_option_has_a_help_text_with_its_default(command: str) -> None:
    parser = _parsers()[command]
    options = [a for a in parser._actions if not isinstance(a, argparse._HelpAction)]
    assert options
    for action in options:
        text = action.help or ""
        assert "default" in text or (action.required and "required" in text), \
            f"{command} {action.option_strings}: {text!r} names no default"
        assert "``" not in text and "issue" not in text.lower()


def test_the_top_level_help_is_plain_text() -> None:
    result = subprocess.run([sys.executable, "-m", "batchsight_tools.cli", "--help"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "batchsight COMMAND --help" in result.stdout
    assert "`" not in result.stdout
    for command in ("run", "demo", "report", "plan", "fit", "evaluate", "serve"):
        assert f"\n    {command} " in result.stdout


def test_cost_help_names_no_issue() -> None:
    result = subprocess.run([sys.executable, "bench/cost.py", "--help"], cwd=REPO, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0 and "usage:" in result.stdout
    assert "issue" not in result.stdout.lower() and "#" not in result.stdout


def test_cost_prints_its_tables_without_matplotlib(tmp_path: Path) -> None:
    """On three hours of the default day (06:00-09:00, its bursts included), not the whole day (a
    minute of simulation): what this checks is the run without matplotlib, which the day does not
    change. The whole default day is simulated in tests/tools/test_costmodel.py (the hosted
    policies) and test_cost_site.py (40 gateways); bench/cost.py's own run on it (the lambda and
    serverless rows, the trade-off, 1 and 10 gateways) is the plot test's below, where matplotlib
    is installed."""
    figure, trace = tmp_path / "cost.png", tmp_path / "morning.csv"
    write_trace(trace, [t for t in default_day() if MORNING[0] <= t < MORNING[1]])
    result = subprocess.run([sys.executable, "-c", WITHOUT_MATPLOTLIB, "bench/cost.py", "--trace", str(trace),
                             "--out", str(figure)], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0 and result.stderr == "", result.stderr
    lines = result.stdout.splitlines()
    header = next(n for n, line in enumerate(lines) if line.startswith("policy"))
    assert [line.split()[0] for line in lines[header + 1:header + 5]] == [
        "always-on", "seed-hourly", "batchsight", "ideal"]
    assert lines[header + 5].startswith("ratios: batchsight/ideal")
    assert lines[-1] == ("plot: skipped, matplotlib is not installed (pip install -e '.[bench]' for it; "
                         "--no-plot hides this)")
    assert not figure.exists()


def test_cost_draws_the_plot_when_matplotlib_is_there(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    figure = tmp_path / "cost.png"
    result = subprocess.run([sys.executable, "bench/cost.py", "--out", str(figure)], cwd=REPO,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == f"plot: {figure}" and figure.stat().st_size > 0
