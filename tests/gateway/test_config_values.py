"""config.py: one clear ConfigError per bad setting, naming it."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from batchsight.config import (
    Config,
    ConfigError,
    config_from_dict,
    load_config,
)
from tests.gateway.config_support import AWS, error_for, minimal


# --- every kind of bad value: ConfigError naming the setting ---------------------------------------

WRONG_TYPES = [
    ("site", {"site": 123}),
    ("line", {"line": ["a"]}),
    ("device", {"device": None}),
    ("drop_folder", {"drop_folder": 5}),
    ("drop_folder", {"drop_folder": ""}),
    ("work_folder", {"work_folder": True}),
    ("aws.source_bucket", {"aws": {"source_bucket": 42}}),
    ("aws.region", {"aws": {"region": None}}),
    ("batch.interval_seconds", {"batch": {"interval_seconds": True}}),   # bool where a number is expected
    ("batch.interval_seconds", {"batch": {"interval_seconds": "3600"}}),
    ("batch.max_images", {"batch": {"max_images": False}}),
    ("batch.max_images", {"batch": {"max_images": "500"}}),
    ("batch.max_images", {"batch": {"max_images": 1.5}}),               # not a whole number
    ("batch.max_age_seconds", {"batch": {"max_age_seconds": [900]}}),
    ("ingest.max_bytes", {"ingest": {"max_bytes": True}}),
    ("ingest.stable_seconds", {"ingest": {"stable_seconds": "2s"}}),
    ("ingest.min_side", {"ingest": {"min_side": 64.5}}),
    ("results.poll_seconds", {"results": {"poll_seconds": {"every": 10}}}),
    ("results.push", {"results": {"push": "yes"}}),
    ("aws.result_queue_prefix", {"aws": {"result_queue_prefix": 7}}),
    ("mqtt.port", {"mqtt": {"port": "1883"}}),
    ("mqtt.port", {"mqtt": {"port": True}}),
    ("mqtt.host", {"mqtt": {"host": 127}}),
    ("alerts.min_confidence", {"alerts": {"min_confidence": "high"}}),
    ("alerts.min_confidence", {"alerts": {"min_confidence": True}}),
    ("retention.after_result", {"retention": {"after_result": 1}}),
    ("log_level", {"log_level": 10}),
    ("aws", {"aws": "bucket-name"}),          # a group must be a mapping
    ("batch", {"batch": [1, 2]}),
    ("mqtt", {"mqtt": "broker.local"}),
]


@pytest.mark.parametrize("setting,data", WRONG_TYPES, ids=[f"{s}-{i}" for i, (s, _) in enumerate(WRONG_TYPES)])
def test_wrong_type_names_the_setting(setting: str, data: dict[str, Any]) -> None:
    message = error_for(minimal(**data))
    assert setting in message
    assert "expected" in message


NOT_POSITIVE = [
    ("batch.interval_seconds", {"batch": {"interval_seconds": 0}}),
    ("batch.interval_seconds", {"batch": {"interval_seconds": -1.0}}),
    ("batch.max_images", {"batch": {"max_images": 0}}),
    ("batch.max_images", {"batch": {"max_images": -5}}),
    ("batch.max_age_seconds", {"batch": {"max_age_seconds": 0.0}}),
    ("ingest.max_bytes", {"ingest": {"max_bytes": 0}}),
    ("ingest.max_bytes", {"ingest": {"max_bytes": -1}}),
    ("ingest.rescan_seconds", {"ingest": {"rescan_seconds": 0}}),
    ("ingest.min_side", {"ingest": {"min_side": 0}}),
    ("results.poll_seconds", {"results": {"poll_seconds": 0}}),
    ("results.timeout_seconds", {"results": {"timeout_seconds": -7200}}),
    ("results.fallback_seconds", {"results": {"fallback_seconds": 0}}),
    ("mqtt.port", {"mqtt": {"port": 0}}),
]


@pytest.mark.parametrize("setting,data", NOT_POSITIVE, ids=[f"{s}-{i}" for i, (s, _) in enumerate(NOT_POSITIVE)])
def test_zero_or_negative_size_names_the_setting(setting: str, data: dict[str, Any]) -> None:
    message = error_for(minimal(**data))
    assert setting in message
    assert "greater than 0" in message


def test_negative_stable_seconds() -> None:
    assert "ingest.stable_seconds" in error_for(minimal(ingest={"stable_seconds": -0.1}))


def test_max_side_below_min_side() -> None:
    message = error_for(minimal(ingest={"min_side": 200, "max_side": 100}))
    assert "ingest.max_side" in message and "ingest.min_side" in message


@pytest.mark.parametrize("data,setting", [
    ({"sitename": "x"}, "sitename"),
    ({"aws": {"bucket": "x"}}, "aws.bucket"),
    ({"batch": {"max_image": 10}}, "batch.max_image"),
    ({"ingest": {"stable": 1}}, "ingest.stable"),
])
def test_unknown_key_names_it_and_lists_known(data: dict[str, Any], setting: str) -> None:
    message = error_for(minimal(**data))
    assert f"unknown setting {setting}" in message
    assert "known:" in message


@pytest.mark.parametrize("name", ["source_bucket", "final_bucket", "queue_url", "state_machine_arn"])
def test_missing_cloud_resource(name: str) -> None:
    aws = dict(AWS)
    del aws[name]
    assert f"aws.{name}" in error_for({"aws": aws})
    aws[name] = ""
    assert f"aws.{name}" in error_for({"aws": aws})


def test_nothing_at_all_names_the_first_cloud_setting() -> None:
    assert "aws.source_bucket" in error_for({})


@pytest.mark.parametrize("field", ["site", "line", "device"])
@pytest.mark.parametrize("value", ["", "plant 1", "a/b", "line#1", "gw+", "x" * 65, "caf\u00e9", "a\tb"])
def test_bad_identity_segment(field: str, value: str) -> None:
    message = error_for(minimal(**{field: value}))
    assert f"setting {field}" in message


def test_identity_with_trailing_newline_is_refused() -> None:
    for field in ("site", "line", "device"):
        assert f"setting {field}" in error_for(minimal(**{field: "plant1\n"}))


@pytest.mark.parametrize("value", [-0.01, 1.01, 2, -1])
def test_min_confidence_out_of_range(value: float) -> None:
    assert "alerts.min_confidence" in error_for(minimal(alerts={"min_confidence": value}))


@pytest.mark.parametrize("value", ["keep", "DELETE", ""])
def test_bad_retention(value: str) -> None:
    message = error_for(minimal(retention={"after_result": value}))
    assert "retention.after_result" in message and "archive" in message


@pytest.mark.parametrize("value", ["verbose", "TRACE", "", "CRITICAL"])
def test_bad_log_level(value: str) -> None:
    assert "log_level" in error_for(minimal(log_level=value))


def test_drop_folder_equal_to_work_folder(tmp_path: Path) -> None:
    same = str(tmp_path / "spool")
    assert "work_folder" in error_for(minimal(drop_folder=same, work_folder=same))
    # the same folder spelled differently is still the same folder
    spelled = str(tmp_path / "other" / ".." / "spool") + "/"
    assert "work_folder" in error_for(minimal(drop_folder=same, work_folder=spelled))


def test_the_work_folder_may_be_inside_the_drop_folder_only_with_subfolders_off(tmp_path: Path) -> None:
    inside = {"drop_folder": str(tmp_path / "drop"), "work_folder": str(tmp_path / "drop" / "work")}
    message = error_for(minimal(**inside))
    assert "inside drop_folder" in message and "ingest.subfolders: false" in message
    assert config_from_dict(minimal(**inside, ingest={"subfolders": False})).ingest.subfolders is False


def test_error_is_a_value_error_with_one_line() -> None:
    with pytest.raises(ValueError) as caught:
        config_from_dict(minimal(batch={"max_images": 0}))
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("data", [{"batch": {"interval_seconds": float("nan")}},
                                  {"ingest": {"stable_seconds": float("nan")}},
                                  {"results": {"poll_seconds": float("nan")}}],
                         ids=["interval", "stable", "poll"])
def test_nan_is_refused(data: dict[str, Any]) -> None:
    error_for(minimal(**data))


FLOAT_SETTINGS = [("batch", "interval_seconds"), ("batch", "max_age_seconds"), ("ingest", "stable_seconds"),
                  ("ingest", "rescan_seconds"), ("results", "poll_seconds"), ("results", "timeout_seconds"),
                  ("results", "fallback_seconds"),
                  ("alerts", "min_confidence"), ("retention", "journal_days"), ("retention", "feedback_hours")]


def test_every_float_setting_is_covered() -> None:
    config = Config()
    found = {(group, f) for group in ("batch", "ingest", "results", "alerts", "mqtt", "aws", "retention", "disk")
             for f in vars(getattr(config, group)) if isinstance(getattr(getattr(config, group), f), float)}
    assert found == set(FLOAT_SETTINGS)


@pytest.mark.parametrize("group,name", FLOAT_SETTINGS)
@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_numbers_are_refused_naming_the_setting(group: str, name: str, value: float) -> None:
    assert f"setting {group}.{name}: must be a finite number" in error_for(minimal(**{group: {name: value}}))


def test_non_finite_yaml_numbers_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "inf.yaml"
    path.write_text(yaml.safe_dump(minimal()) + "batch:\n  max_age_seconds: .inf\n")
    with pytest.raises(ConfigError, match=r"batch\.max_age_seconds"):
        load_config(path)


def test_port_above_65535_is_refused() -> None:
    assert "mqtt.port" in error_for(minimal(mqtt={"port": 70000}))
    assert "mqtt.port" in error_for(minimal(mqtt={"port": 65536}))
    assert "mqtt.port" in error_for(minimal(mqtt={"port": 0}))
    assert config_from_dict(minimal(mqtt={"port": 65535})).mqtt.port == 65535
    assert config_from_dict(minimal(mqtt={"port": 1})).mqtt.port == 1


def test_topic_prefix_with_wildcards_is_refused() -> None:
    for prefix in ("factory/#", "a/+/b", ""):
        assert "mqtt.topic_prefix" in error_for(minimal(mqtt={"topic_prefix": prefix}))


@pytest.mark.parametrize("prefix", ["nul\0byte", "/factory", "factory/", "/"])
def test_topic_prefix_with_nul_or_outer_slash_is_refused(prefix: str) -> None:
    assert "mqtt.topic_prefix" in error_for(minimal(mqtt={"topic_prefix": prefix}))


@pytest.mark.parametrize("prefix", ["acme", "acme/plants", "a b", "$edge/factory"])
def test_ordinary_topic_prefixes_pass(prefix: str) -> None:
    config = config_from_dict(minimal(mqtt={"topic_prefix": prefix}))
    assert config.topic("alert").startswith(prefix + "/")


def test_non_string_keys_give_config_error(tmp_path: Path) -> None:
    path = tmp_path / "keys.yaml"
    path.write_text(yaml.safe_dump(minimal()) + "1: x\nfoo: y\n")
    with pytest.raises(ConfigError):
        load_config(path)


def test_a_single_non_string_key_is_an_unknown_setting() -> None:
    assert "unknown setting 1" in error_for({**minimal(), 1: "x"})


@pytest.mark.parametrize("schedule", ["61 * * * *", "every hour", "* * *"])
def test_bad_cron_schedule_is_refused(schedule: str) -> None:
    assert "batch.schedule" in error_for(minimal(batch={"schedule": schedule}))


def test_cron_schedule_is_accepted() -> None:
    assert config_from_dict(minimal(batch={"schedule": "0 */2 * * *"})).batch.schedule == "0 */2 * * *"


@pytest.mark.parametrize("data,setting", [({"disk": {"quota_bytes": 0}}, "disk.quota_bytes"),
                                          ({"disk": {"min_free_bytes": -1}}, "disk.min_free_bytes"),
                                          ({"retention": {"journal_days": 0}}, "retention.journal_days")])
def test_disk_and_retention_limits(data: dict[str, Any], setting: str) -> None:
    assert setting in error_for(minimal(**data))


@pytest.mark.parametrize("device,prefix", [("gateway.7", "stack-results"), ("gateway7", "s" * 80)])
def test_a_result_queue_sqs_cannot_name_is_refused_saying_what_to_do(device: str, prefix: str) -> None:
    message = error_for(minimal(device=device, aws={"result_queue_prefix": prefix}))
    assert "setting aws.result_queue_prefix" in message and "results.push: false" in message


def test_push_off_needs_no_queue_name() -> None:
    assert config_from_dict(minimal(device="gateway.7", aws={"result_queue_prefix": "stack-results"},
                                    results={"push": False})).results.push is False
