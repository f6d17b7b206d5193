"""A measured figure next to the baseline that makes it readable, and the run's summary.

Each figure is printed as soon as it is measured (one line: ``[name] value; baseline ...;
ratio ...; goal ...: met``), so a long run shows progress and a crash loses nothing printed.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from batchsight_tools.bench.heading import heading


@dataclass
class Figure:
    """One measured figure with the baseline that makes it readable."""

    name: str
    value: float
    unit: str
    baseline: float | None = None
    baseline_name: str = ""
    ratio: float | None = None
    goal: str = ""
    met: bool | None = None     # None: the figure has no goal, it is only reported
    detail: str = ""

    def line(self) -> str:
        text = f"[{self.name}] {number(self.value)} {self.unit}"
        if self.baseline is not None:
            text += f"; baseline {self.baseline_name} {number(self.baseline)} {self.unit}"
        if self.ratio is not None:
            text += f"; ratio {self.ratio:.3f}"
        if self.goal:
            text += f"; goal {self.goal}: {'met' if self.met else 'NOT MET'}"
        if self.detail:
            text += f"  ({self.detail})"
        return text

    def markdown_row(self) -> str:
        baseline = f"{number(self.baseline)} {self.unit} ({self.baseline_name})" if self.baseline is not None else ""
        ratio = f"{self.ratio:.3f}" if self.ratio is not None else ""
        goal = f"{self.goal}: {'met' if self.met else '**not met**'}" if self.goal else ""
        return f"| {self.name} | {number(self.value)} {self.unit} | {baseline} | {ratio} | {goal} |"


def number(value: float) -> str:
    """Three significant digits or so: 1,234 / 12.3 / 0.123."""
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}" if abs(value) < 1 else f"{value:.1f}"


@dataclass
class Figures:
    """The figures of one run, in the order they were measured."""

    measured: list[Figure] = field(default_factory=list)

    def add(self, figure: Figure) -> None:
        self.measured.append(figure)
        print(figure.line(), flush=True)

    def summary(self, elapsed: float) -> bool:
        """Print how many goals were met; True when all were."""
        goals = [f for f in self.measured if f.met is not None]
        missed = [f.name for f in goals if not f.met]
        print(f"\nsummary: {len(self.measured)} figures, {len(goals) - len(missed)} of {len(goals)} goals met"
              + (f" (not met: {', '.join(missed)})" if missed else "") + f", {elapsed:.0f} s", flush=True)
        return not missed

    def markdown(self) -> str:
        rows = [heading(), "", "| figure | value | baseline | ratio | goal |", "|---|---|---|---|---|"]
        rows += [f.markdown_row() for f in self.measured]
        return "\n".join(rows) + "\n"
