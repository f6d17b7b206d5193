"""Reading one setting from the Lambda environment that cloud/template.yaml defines.

The stack's settings (``settings.Settings``) and each backend's own settings are read the
same way, so a missing or malformed variable always fails alike: a ``SettingsError`` that
names the variable, raised when a function starts its work rather than deep inside it.
Values are read at call time (never at import time), so a warm process sees new settings.

A stack serves many models (routes.py): while a function works for one, ``overlay`` lays that
model's own values over the environment, so every setting the stack and the backends read
(queue, backend, endpoint, rates, the lock's id) is that model's, without a parameter threaded
through every call. A context variable, not the process environment: the local emulator runs
functions for different models at once on threads of one process.
"""
from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar

__all__ = ["SettingsError", "number", "optional", "overlay", "required"]

_OVERLAY: ContextVar[Mapping[str, str] | None] = ContextVar("batchsight_settings_overlay", default=None)


class SettingsError(ValueError):
    """A function's environment is missing or has a bad value; the message names it."""


def required(name: str) -> str:
    """The variable's value, stripped; an unset or blank variable is an error."""
    value = _raw(name)
    if not value:
        raise SettingsError(f"environment variable {name} is not set; check cloud/template.yaml")
    return value


def optional(name: str) -> str:
    """The variable's value, stripped; empty when unset (a feature the stack may leave off)."""
    return _raw(name)


def number(name: str, default: float, *, minimum: float) -> float:
    """The variable as a number (``default`` when unset or blank), at least ``minimum``."""
    raw = _raw(name)
    try:
        value = float(raw) if raw else default
    except ValueError as exc:
        raise SettingsError(f"environment variable {name}={raw!r} is not a number") from exc
    if value < minimum:
        raise SettingsError(f"environment variable {name}={value} must be >= {minimum}")
    return value


@contextmanager
def overlay(values: Mapping[str, str]) -> Iterator[None]:
    """Within the block, ``values`` stand in for the environment's (threads started inside it see
    them only when started with ``contextvars.copy_context()``)."""
    token = _OVERLAY.set({**(_OVERLAY.get() or {}), **values})
    try:
        yield
    finally:
        _OVERLAY.reset(token)


def _raw(name: str) -> str:
    value = (_OVERLAY.get() or {}).get(name)
    return (os.environ.get(name, "") if value is None else str(value)).strip()
