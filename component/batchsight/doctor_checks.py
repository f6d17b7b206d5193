"""What doctor's checks return: a verdict, and a detail that says what to fix.

A check that cannot mean anything because another one failed (the buckets, when there are no
credentials; everything AWS, when its endpoint cannot be reached) is SKIP, naming that check:
one root cause gives one FAIL with its fix, not a FAIL for each thing it breaks.
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Verdict(StrEnum):
    PASS = "PASS"
    WARN = "WARN"   # works, but a person should know (the component creates a missing folder)
    FAIL = "FAIL"
    SKIP = "SKIP"   # not checked: a FAIL above makes it meaningless


@dataclass(frozen=True)
class Check:
    name: str
    verdict: Verdict
    detail: str

    @property
    def ok(self) -> bool:
        return self.verdict is not Verdict.FAIL


def passed(name: str, detail: str) -> Check:
    return Check(name, Verdict.PASS, detail)


def warned(name: str, detail: str) -> Check:
    return Check(name, Verdict.WARN, detail)


def failed(name: str, detail: str) -> Check:
    return Check(name, Verdict.FAIL, detail)


def skipped(name: str, because: str) -> Check:
    return Check(name, Verdict.SKIP, f"not checked: {because}")


def report(checks: list[Check]) -> str:
    """One line per check, then a line that says what to do first."""
    width = max(len(c.name) for c in checks)
    lines = [f"{c.verdict.value}  {c.name:<{width}}  {c.detail}" for c in checks]
    failures = [c for c in checks if c.verdict is Verdict.FAIL]
    skips = sum(c.verdict is Verdict.SKIP for c in checks)
    if not failures:
        lines.append(f"\nall {len(checks) - skips} checks passed" + (f" ({skips} not needed here)" if skips else ""))
    else:
        blocked = f"; {skips} skipped until {'it is' if len(failures) == 1 else 'they are'} fixed" if skips else ""
        lines.append(f"\n{len(failures)} to fix: {', '.join(c.name for c in failures)}{blocked}")
    return "\n".join(lines)
