"""config.py: defaults, loading a real YAML file, and one clear ConfigError per bad setting."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from batchsight.config import (
    AlertSettings,
    AwsSettings,
    BatchSettings,
    Config,
    ConfigError,
    IngestSettings,
    MqttSettings,
    ResultSettings,
    RetentionSettings,
    config_from_dict,
    load_config,
)

AWS = {"source_bucket": "src-bucket", "final_bucket": "final-bucket",
       "queue_url": "https://sqs.us-east-1.amazonaws.com/123456789012/images",
       "state_machine_arn": "arn:aws:states:us-east-1:123456789012:stateMachine:batch"}


def minimal(**overrides: Any) -> dict[str, Any]:
    """The smallest valid configuration (the cloud resources), plus overrides."""
    data: dict[str, Any] = {"aws": dict(AWS)}
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key] = {**data[key], **value}
        else:
            data[key] = value
    return data


def error_for(data: Any) -> str:
    with pytest.raises(ConfigError) as caught:
        config_from_dict(data)
    return str(caught.value)


# --- defaults -------------------------------------------------------------------------------

def test_defaults_of_every_group() -> None:
    assert BatchSettings() == BatchSettings(interval_seconds=3600.0, max_images=500, max_age_seconds=900.0)
    assert IngestSettings() == IngestSettings(stable_seconds=2.0, rescan_seconds=30.0, subfolders=True,
                                              max_bytes=6 * 1024 * 1024, min_side=64, max_side=4096)
    assert ResultSettings() == ResultSettings(poll_seconds=10.0, timeout_seconds=7200.0)
    assert MqttSettings() == MqttSettings(host="127.0.0.1", port=1883, client_id="", topic_prefix="factory")
    assert AlertSettings().min_confidence == 0.0
    assert RetentionSettings().after_result == "delete"
    aws = AwsSettings()
    assert aws.region == "us-east-1"
    assert (aws.source_bucket, aws.final_bucket, aws.queue_url, aws.state_machine_arn,
            aws.endpoint_url) == ("", "", "", "", "")


def test_minimal_mapping_gets_every_default() -> None:
    config = config_from_dict(minimal())
    default = Config()
    assert config.aws == AwsSettings(**AWS)
    for name in ("site", "line", "device", "drop_folder", "work_folder", "batch", "ingest",
                 "results", "mqtt", "alerts", "retention", "log_level"):
        assert getattr(config, name) == getattr(default, name), name
    assert config.log_level == "INFO"
    assert isinstance(config.batch.interval_seconds, float)
    # the default identity and folders themselves pass validation
    for name in ("site", "line", "device"):
        assert re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", getattr(config, name))
    assert config.drop_folder != config.work_folder


def test_derived_paths_and_client_id(tmp_path: Path) -> None:
    config = config_from_dict(minimal(drop_folder=str(tmp_path / "drop"), work_folder=str(tmp_path / "work"),
                                      device="cam-7"))
    assert config.drop_folder == tmp_path / "drop"
    assert isinstance(config.work_folder, Path)
    assert config.journal_path == tmp_path / "work" / "journal.sqlite3"
    assert config.quarantine_folder == tmp_path / "work" / "quarantine"
    assert config.archive_folder == tmp_path / "work" / "archive"
    assert config.mqtt_client_id == "batchsight-cam-7"
    assert config_from_dict(minimal(mqtt={"client_id": "plc-gw"})).mqtt_client_id == "plc-gw"


def test_topic_format() -> None:
    config = config_from_dict(minimal(site="plant-9", line="L_2", device="gw.3", mqtt={"topic_prefix": "acme"}))
    assert config.topic("alert") == "acme/plant-9/L_2/gw.3/inspection/alert"
    assert config.topic("status") == "acme/plant-9/L_2/gw.3/inspection/status"
    default = config_from_dict(minimal())
    assert default.topic("result") == (f"factory/{default.site}/{default.line}/{default.device}"
                                       "/inspection/result")


def test_numbers_are_coerced_only_when_exact() -> None:
    config = config_from_dict(minimal(batch={"interval_seconds": 60, "max_images": 20},
                                      ingest={"stable_seconds": 0}))
    assert config.batch.interval_seconds == 60.0 and isinstance(config.batch.interval_seconds, float)
    assert config.batch.max_images == 20 and isinstance(config.batch.max_images, int)
    assert config.ingest.stable_seconds == 0.0  # zero is allowed: complete as soon as seen twice


def test_greengrass_float_for_an_int_setting_is_accepted_when_whole() -> None:
    config = config_from_dict(minimal(batch={"max_images": 500.0}, mqtt={"port": 1883.0}))
    assert config.batch.max_images == 500 and isinstance(config.batch.max_images, int)
    assert config.mqtt.port == 1883 and isinstance(config.mqtt.port, int)


def test_accepted_edge_values() -> None:
    for confidence in (0, 0.0, 0.5, 1, 1.0):
        assert config_from_dict(minimal(alerts={"min_confidence": confidence})).alerts.min_confidence == confidence
    assert config_from_dict(minimal(retention={"after_result": "archive"})).retention.after_result == "archive"
    assert config_from_dict(minimal(log_level="debug")).log_level.upper() == "DEBUG"
    assert config_from_dict(minimal(ingest={"min_side": 100, "max_side": 100})).ingest.max_side == 100
    assert config_from_dict(minimal(site="a", line="B.2", device="x" * 64)).device == "x" * 64


# --- load_config from real files ---------------------------------------------------------------

def test_load_config_from_real_yaml_file(tmp_path: Path) -> None:
    path = tmp_path / "batchsight.yaml"
    path.write_text(
        "site: plant2\n"
        "line: line-7\n"
        "device: gw_1\n"
        f"drop_folder: {tmp_path / 'drop'}\n"
        f"work_folder: {tmp_path / 'work'}\n"
        "aws:\n"
        "  region: eu-west-1\n"
        "  source_bucket: src\n"
        "  final_bucket: final\n"
        "  queue_url: http://127.0.0.1:5000/123456789012/q\n"
        "  state_machine_arn: arn:aws:states:eu-west-1:123456789012:stateMachine:sm\n"
        "  endpoint_url: http://127.0.0.1:5000\n"
        "batch:\n"
        "  interval_seconds: 120\n"
        "  max_images: 50\n"
        "  max_age_seconds: 30.5\n"
        "ingest:\n"
        "  stable_seconds: 0.5\n"
        "alerts:\n"
        "  min_confidence: 0.8\n"
        "retention:\n"
        "  after_result: archive\n"
        "log_level: WARNING\n")
    config = load_config(path)
    assert (config.site, config.line, config.device) == ("plant2", "line-7", "gw_1")
    assert config.drop_folder == tmp_path / "drop"
    assert config.aws.region == "eu-west-1"
    assert config.aws.endpoint_url == "http://127.0.0.1:5000"
    assert config.batch == BatchSettings(interval_seconds=120.0, max_images=50, max_age_seconds=30.5)
    assert config.ingest.stable_seconds == 0.5
    assert config.ingest.max_side == 4096  # untouched settings keep their default
    assert config.alerts.min_confidence == 0.8
    assert config.retention.after_result == "archive"
    assert config.log_level == "WARNING"
    assert config.topic("alert") == "factory/plant2/line-7/gw_1/inspection/alert"


def test_load_config_round_trips_a_dumped_mapping(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(minimal(mqtt={"host": "broker.local", "port": 8883})))
    config = load_config(path)
    assert config.mqtt.host == "broker.local" and config.mqtt.port == 8883


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError, match="does not exist") as caught:
        load_config(path)
    assert str(path) in str(caught.value)


def test_invalid_yaml(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("aws:\n  source_bucket: [unclosed\n  final_bucket: x\n")
    with pytest.raises(ConfigError, match="not valid YAML") as caught:
        load_config(path)
    assert str(path) in str(caught.value)


def test_empty_file_names_the_first_missing_cloud_setting(tmp_path: Path) -> None:
    path = tmp_path / "empty.yaml"
    path.write_text("")
    with pytest.raises(ConfigError, match=r"aws\.source_bucket"):
        load_config(path)


def test_top_level_list_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "list.yaml"
    path.write_text("- site: a\n- line: b\n")
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_config(path)


def test_config_path_that_is_a_folder_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot be read") as caught:
        load_config(tmp_path)
    assert str(tmp_path) in str(caught.value)


def test_config_file_that_is_not_utf8_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes("site: caf\u00e9\n".encode("latin-1"))
    with pytest.raises(ConfigError, match="not UTF-8") as caught:
        load_config(path)
    assert str(path) in str(caught.value)


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
    ("mqtt.port", {"mqtt": {"port": "1883"}}),
    ("mqtt.port", {"mqtt": {"port": True}}),
    ("mqtt.host", {"mqtt": {"host": 127}}),
    ("alerts.min_confidence", {"alerts": {"min_confidence": "high"}}),
    ("alerts.min_confidence", {"alerts": {"min_confidence": True}}),
    ("retention.after_result", {"retention": {"after_result": 1}}),
    ("log_level", {"log_level": 10}),
    ("aws", {"aws": "bucket-name"}),          # a group must be a mapping
    ("batch", {"batch": [1, 2]}),
    ("mqtt", {"mqtt": None}),
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
                  ("ingest", "rescan_seconds"), ("results", "poll_seconds"), ("results", "timeout_seconds"), ("alerts", "min_confidence"),
                  ("retention", "journal_days")]


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
