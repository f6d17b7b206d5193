"""config.py: defaults, and loading a real YAML file (bad values: test_config_values.py)."""
from __future__ import annotations

import re
from pathlib import Path

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
from tests.gateway.config_support import AWS, minimal


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
