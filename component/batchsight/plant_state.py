"""The component's condition as a PLC reads it: Ready, an error code and its text.

Derived from the retained status payload (alerts.status_payload) the main loop publishes, so
OPC UA's handshake block and Sparkplug's status metrics say exactly what the MQTT status says.
One code at a time, the most severe first; the text is the alarm a person must act on.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# code -> what it means (docs/plant-floor.md lists them for the PLC programmer)
ERROR_CODES = {
    0: "no problem",
    1: "component stopped",
    10: "disk full or quota reached: new images wait in the drop folder",
    20: "cloud unreachable: results of images judged in the cloud are delayed",
    21: "results overdue: images re-submitted",
    30: "local detector unavailable: images are judged in the cloud",
    40: "drop folder not watched, only scanned",
    90: "another alarm: see the error text",
}


@dataclass(frozen=True)
class Condition:
    state: str = "starting"      # starting (no status yet) | running | stopped
    ready: bool = False          # running and taking images
    error_code: int = 0
    error_text: str = ""


def _code(alarm: str) -> int:
    text = alarm.lower()
    for words, code in ((("disk",), 10), (("had no result",), 21), (("local detector",), 30),
                        (("no file events",), 40)):
        if any(word in text for word in words):
            return code
    return 90


def condition(payload: dict[str, Any]) -> Condition:
    state = str(payload.get("state", "starting"))
    alarms = [str(a) for a in payload.get("alarms", [])]
    if state != "running":
        return Condition(state, False, 1, f"component {state}")
    coded = sorted(((_code(a), a) for a in alarms), key=lambda pair: pair[0])
    if payload.get("cloud") == "unreachable":
        coded.append((20, ERROR_CODES[20]))
        coded.sort(key=lambda pair: pair[0])
    code, text = coded[0] if coded else (0, "")
    return Condition(state, code != 10, code, text[:500])
