"""Where the component's MQTT topics live: today's prefix layout, or an ISA-95 one.

``prefix`` (the default): ``{topic_prefix}/{site}/{line}/{device}/inspection/{kind}``.
``isa95``: ``{enterprise}/{site}/{area}/{line}/{cell}/inspection/{kind}``, the equipment
hierarchy of ISA-95 (IEC 62264) that unified-namespace brokers are organised by; the
enterprise level is ``mqtt.topic_prefix`` and the cell defaults to the device id. Either way the
topic starts with ``mqtt.topic_prefix`` and ends in ``/inspection/{kind}``, so the recipe's
local pub/sub policies (``factory/*/inspection/...``) cover both.
"""
from __future__ import annotations

import re

LAYOUTS = ("prefix", "isa95")
_SEGMENT = re.compile(r"[A-Za-z0-9_.-]{1,64}")


def inspection_base(*, layout: str, prefix: str, site: str, line: str, device: str, area: str = "",
                    cell: str = "") -> str:
    """The topic every kind hangs under (without the trailing ``/``)."""
    if layout == "isa95":
        return f"{prefix}/{site}/{area}/{line}/{cell or device}/inspection"
    return f"{prefix}/{site}/{line}/{device}/inspection"


def check_layout(layout: str, area: str, cell: str) -> str | None:
    """What is wrong with the layout settings, in the words of the setting; None when fine."""
    if layout not in LAYOUTS:
        return f"setting mqtt.topic_layout: must be one of {', '.join(LAYOUTS)}, got {layout!r}"
    if layout == "isa95" and not _SEGMENT.fullmatch(area):
        return ("setting mqtt.area: the isa95 layout needs the area (1-64 letters, digits, '.', '_' or '-'), "
                f"got {area!r}")
    if cell and not _SEGMENT.fullmatch(cell):
        return f"setting mqtt.cell: use 1-64 letters, digits, '.', '_' or '-', got {cell!r}"
    if layout == "prefix" and (area or cell):
        return f"setting mqtt.{'area' if area else 'cell'}: used only with mqtt.topic_layout: isa95"
    return None

