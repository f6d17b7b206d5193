"""Reading one setting from the Lambda environment that cloud/template.yaml defines.

The stack's settings (``settings.Settings``) and each backend's own settings are read the
same way, so a missing or malformed variable always fails alike: a ``SettingsError`` that
names the variable, raised when a function starts its work rather than deep inside it.
Values are read at call time (never at import time), so a warm process sees new settings.
"""
from __future__ import annotations

import os

__all__ = ["SettingsError", "number", "optional", "required"]


class SettingsError(ValueError):
    """A function's environment is missing or has a bad value; the message names it."""


def required(name: str) -> str:
    """The variable's value, stripped; an unset or blank variable is an error."""
    value = os.environ.get(name, "").strip()
    if not value:
        raise SettingsError(f"environment variable {name} is not set; check cloud/template.yaml")
    return value


def optional(name: str) -> str:
    """The variable's value, stripped; empty when unset (a feature the stack may leave off)."""
    return os.environ.get(name, "").strip()


def number(name: str, default: float, *, minimum: float) -> float:
    """The variable as a number (``default`` when unset or blank), at least ``minimum``."""
    raw = os.environ.get(name, "").strip()
    try:
        value = float(raw) if raw else default
    except ValueError as exc:
        raise SettingsError(f"environment variable {name}={raw!r} is not a number") from exc
    if value < minimum:
        raise SettingsError(f"environment variable {name}={value} must be >= {minimum}")
    return value
