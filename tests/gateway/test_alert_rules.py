"""Alert thresholds: confidence, and per-anomaly-name rules for segmentation models."""
from __future__ import annotations

import json

import pytest

from batchsight.alerts import is_alert
from batchsight.config import ConfigError, config_from_dict
from batchsight.journal import ImageRecord, ImageState

AWS = {"source_bucket": "s", "final_bucket": "f", "queue_url": "q", "state_machine_arn": "a"}


def _config(**alerts: object):
    return config_from_dict({"aws": AWS, "alerts": alerts})


def _image(anomalous: bool, confidence: float, anomalies: list[dict] | None = None) -> ImageRecord:
    result: dict[str, object] = {"IsAnomalous": anomalous, "Confidence": confidence}
    if anomalies is not None:
        result["Anomalies"] = anomalies
    return ImageRecord(image_id="a" * 64, file_name="x.jpg", path="/x", ext="jpg", size=1, width=64, height=64,
                       captured_at="2026-11-23T10:00:00.000Z", seen_at=0.0, state=ImageState.RESULT_STORED,
                       batch_id="b", is_anomalous=anomalous, confidence=confidence,
                       result_json=json.dumps({"result": result}))


def _anomaly(name: str, area: float) -> dict:
    return {"Name": name, "PixelAnomaly": {"TotalPercentageArea": area, "Color": "#FF0000"}}


def test_confidence_threshold() -> None:
    config = _config(min_confidence=0.8)
    assert is_alert(config, _image(True, 0.9)) and not is_alert(config, _image(True, 0.7))
    assert not is_alert(config, _image(False, 0.99))


@pytest.mark.parametrize("anomalies, expected", [
    ([_anomaly("background", 99.0), _anomaly("scratch", 0.2)], False),   # scratch below its area
    ([_anomaly("scratch", 0.6)], True),
    ([_anomaly("crack", 0.01)], True),                                    # any crack
    ([_anomaly("dent", 5.0)], False),                                     # not a listed name
    ([], True),                                                           # no named anomalies: the verdict decides
])
def test_per_name_rules(anomalies: list[dict], expected: bool) -> None:
    config = _config(anomaly_rules="crack:0, scratch:0.5")
    assert config.alerts.rules() == {"crack": 0.0, "scratch": 0.5}
    assert is_alert(config, _image(True, 0.9, anomalies)) is expected


@pytest.mark.parametrize("rules", ["crack", "crack:x", ":1", "crack:101"])
def test_bad_rules_name_the_setting(rules: str) -> None:
    with pytest.raises(ConfigError, match="alerts.anomaly_rules"):
        _config(anomaly_rules=rules)
