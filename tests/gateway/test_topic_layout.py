"""The two topic layouts: today's prefix layout and the ISA-95 one, from a real configuration."""
from __future__ import annotations

from batchsight.config import config_from_dict
from tests.gateway.config_support import minimal


def test_the_prefix_layout_is_the_default() -> None:
    config = config_from_dict(minimal(site="s1", line="l1", device="d1"))
    assert config.topic("result") == "factory/s1/l1/d1/inspection/result"


def test_the_isa95_layout_names_enterprise_site_area_line_and_cell() -> None:
    config = config_from_dict(minimal(site="s1", line="l1", device="d1",
                                      mqtt={"topic_prefix": "acme", "topic_layout": "isa95", "area": "paint"}))
    assert config.topic("alert") == "acme/s1/paint/l1/d1/inspection/alert", "the cell defaults to the device"
    celled = config_from_dict(minimal(site="s1", line="l1", device="d1",
                                      mqtt={"topic_layout": "isa95", "area": "paint", "cell": "cell-3"}))
    assert celled.topic("status") == "factory/s1/paint/l1/cell-3/inspection/status"
