"""Configuration updates while the program runs: what a running program takes, and how its
parts take it.

An update (a Greengrass deployment over IPC, or SIGHUP off Greengrass, which re-reads the
configuration file; Component.apply_config on the main loop) reaches every part the same way:
each part that holds settings has ``reconfigure(config)`` (most read ``self.config`` at each
use and simply replace it, ``Configured``), and the component hands the update to every such
part the wiring built (wiring.Parts.reconfigurable): none is listed by hand, so none can be
forgotten. Settings only a restart can change are kept as they were and reported.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Protocol, runtime_checkable

from batchsight.config import Config

# Settings a running program keeps until it restarts: who it is, where its files, cloud and
# broker are, where images are judged (inference.mode: it also decides whether the recipe's
# Install step installs the detector, and an image's route is fixed once set) and where the
# first detector listens (inference.endpoint), and what counts as a camera file
# (ingest.subfolders: it decides what the folder observer watches, and whether the work folder
# may lie inside the drop folder). Greengrass restarts the component when its Run script's
# configuration changes; a live update only reports them. The models (inference.model,
# inference.shadow_model) are not among them: a new one is swapped in while the program runs
# (detector_server.py), and the recipe keeps them out of its lifecycle scripts so that a model
# deployment does not restart the component.
RESTART_SETTINGS = ("site", "line", "device", "drop_folder", "work_folder", "aws", "mqtt", "inference.mode",
                    "inference.endpoint", "ingest.subfolders")


def reloadable(current: Config, new: Config) -> tuple[Config, list[str]]:
    """What a live update applies: ``new`` with every restart setting kept as in ``current``,
    and the names of those it would have changed. The result is valid too: the checks that tie
    settings together (config._check) hold within the kept ones or within the new ones."""
    ignored = [name for name in RESTART_SETTINGS if _setting(new, name) != _setting(current, name)]
    applied = new
    for name in RESTART_SETTINGS:
        applied = _replaced(applied, name, _setting(current, name))
    return applied, ignored


def _setting(config: Any, dotted: str) -> Any:
    for name in dotted.split("."):
        config = getattr(config, name)
    return config


def _replaced(config: Any, dotted: str, value: Any) -> Any:
    name, _, rest = dotted.partition(".")
    return dataclasses.replace(config, **{name: _replaced(getattr(config, name), rest, value) if rest else value})


@runtime_checkable
class Reconfigurable(Protocol):
    """A part that takes a new configuration while the program runs."""

    def reconfigure(self, config: Config) -> None: ...


class Configured:
    """For a part that reads its settings from ``self.config`` at each use: an update replaces it
    (a reference assignment, so a part's own thread sees the old or the new one, never a mix)."""

    config: Config

    def reconfigure(self, config: Config) -> None:
        self.config = config
