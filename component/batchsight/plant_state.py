"""The component's condition as a PLC reads it: Ready, an error code and its text.

Derived from the retained status payload (alerts.status_payload) the main loop publishes, so
OPC UA's handshake block and Sparkplug's status metrics say exactly what the MQTT status says.
Each alarm is coded where it is raised (runtime.py gives ``alarm_codes`` beside ``alarms``), so
a PLC's code never depends on an alarm's wording. One code at a time, the most severe (the
lowest) first; the text is the alarm a person must act on.
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Any


class Alarm(IntEnum):
    """The codes a PLC reads; docs/plant-floor.md lists them for the PLC programmer."""

    NONE = 0
    STOPPED = 1
    DISK = 10
    CLOUD_UNREACHABLE = 20
    RESULTS_OVERDUE = 21
    CLOUD_REFUSES = 22
    DETECTOR_UNAVAILABLE = 30
    MODEL_NOT_USED = 31
    NOT_WATCHED = 40
    PLANT_FLOOR = 50
    OTHER = 90


ERROR_CODES = {
    Alarm.NONE: "no problem",
    Alarm.STOPPED: "component stopped",
    Alarm.DISK: "disk full or quota reached: new images wait in the drop folder",
    Alarm.CLOUD_UNREACHABLE: "cloud unreachable: results of images judged in the cloud are delayed",
    Alarm.RESULTS_OVERDUE: "results overdue: images re-submitted",
    Alarm.CLOUD_REFUSES: "the cloud refuses the gateway's requests (credentials, permissions, resources): see the text",
    Alarm.DETECTOR_UNAVAILABLE: "local detector unavailable: images are judged in the cloud",
    Alarm.MODEL_NOT_USED: "a new or shadow model cannot be used: the current one goes on judging",
    Alarm.NOT_WATCHED: "drop folder not watched, only scanned",
    Alarm.PLANT_FLOOR: "a plant-floor protocol (OPC UA server, Sparkplug node) is not running: see the text",
    Alarm.OTHER: "another alarm: see the error text",
}


@dataclass(frozen=True)
class Condition:
    state: str = "starting"      # starting (no status yet) | running | stopped
    ready: bool = False          # running and taking images
    error_code: int = 0
    error_text: str = ""


def condition(payload: dict[str, Any]) -> Condition:
    state = str(payload.get("state", "starting"))
    if state != "running":
        return Condition(state, False, Alarm.STOPPED, f"component {state}")
    alarms = [str(a) for a in payload.get("alarms", [])]
    codes = [int(c) for c in payload.get("alarm_codes", [])]
    coded = list(zip(codes, alarms, strict=True)) if len(codes) == len(alarms) else [(Alarm.OTHER, a) for a in alarms]
    if payload.get("cloud") == "unreachable" and Alarm.CLOUD_REFUSES not in codes:
        coded.append((Alarm.CLOUD_UNREACHABLE, ERROR_CODES[Alarm.CLOUD_UNREACHABLE]))
    code, text = min(coded, key=lambda pair: pair[0]) if coded else (Alarm.NONE, "")
    return Condition(state, code != Alarm.DISK, int(code), text[:500])
