"""config_parse.py: each error a plant engineer's typing leads to is one line that names the
setting (and its line in the file) and says what to write instead."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from batchsight.config import ConfigError, config_from_dict, load_config
from tests.gateway.config_support import error_for, minimal

BASE = yaml.safe_dump(minimal(), sort_keys=False)  # aws: on line 1, its four settings on lines 2-5


def file_error(tmp_path: Path, text: str) -> str:
    path = tmp_path / "edge.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    message = str(caught.value)
    assert "\n" not in message and str(path) in message
    return message


# --- values YAML reads as another type --------------------------------------------------------

def test_an_unquoted_protocol_says_to_quote_it(tmp_path: Path) -> None:
    message = file_error(tmp_path, BASE + "mqtt:\n  protocol: 5\n")
    assert "line 7: setting mqtt.protocol" in message
    assert 'protocol: "5"' in message and "quotes" in message
    assert 'protocol: "3.1.1"' in file_error(tmp_path, BASE + "mqtt:\n  protocol: 3.1\n")


@pytest.mark.parametrize("data,setting,advice", [
    ({"mqtt": {"port": "1883"}}, "mqtt.port", "remove the quotes, port: 1883"),
    ({"batch": {"interval_seconds": "60"}}, "batch.interval_seconds", "remove the quotes, interval_seconds: 60"),
    ({"batch": {"interval_seconds": "1h"}}, "batch.interval_seconds", "a plain number without units"),
    ({"disk": {"quota_bytes": "2GB"}}, "disk.quota_bytes", "a number of bytes"),
    ({"batch": {"max_images": 2.5}}, "batch.max_images", "a whole number, e.g. max_images: 2"),
    ({"mqtt": {"tls": "true"}}, "mqtt.tls", "tls: true or tls: false, without quotes"),
    ({"line": 7}, "line", 'write it in quotes, line: "7"'),
    ({"mqtt": {"username": True}}, "mqtt.username", "yes, no, on, off"),
    ({"device": None}, "device", "delete the line to keep the default (gateway1)"),
    ({"drop_folder": "~/drop"}, "drop_folder", "write the full path"),
    ({"mqtt": "broker.local"}, "mqtt", "indented lines below 'mqtt:'"),
])
def test_a_wrong_type_says_what_to_write(data: dict[str, Any], setting: str, advice: str) -> None:
    message = error_for(minimal(**data))
    assert message.startswith(f"setting {setting}: ")
    assert advice in message


def test_a_group_with_every_line_commented_out_keeps_its_defaults() -> None:
    assert config_from_dict(minimal(mqtt=None)).mqtt.port == 1883


# --- keys -------------------------------------------------------------------------------------

@pytest.mark.parametrize("data,advice", [
    ({"mqtt": {"hostname": "x"}}, "did you mean mqtt.host?"),
    ({"batch": {"max_image": 5}}, "did you mean batch.max_images?"),
    ({"source_bucket": "x"}, "it belongs under aws:"),
    ({"mqtt": {"interval_seconds": 3}}, "it belongs under batch:"),
    ({"aws": {"site": "p"}}, "it is a top-level setting: do not indent it"),
    ({"colour": "red"}, "remove it or fix its spelling"),
])
def test_an_unknown_key_says_where_it_belongs(data: dict[str, Any], advice: str) -> None:
    assert advice in error_for(minimal(**data))


def test_a_key_given_twice_is_refused_naming_both_lines(tmp_path: Path) -> None:
    message = file_error(tmp_path, BASE + "mqtt:\n  port: 1884\nmqtt:\n  host: broker\n")
    assert "line 8: mqtt is given twice (also on line 6): keep one" in message
    nested = file_error(tmp_path, BASE + "mqtt:\n  port: 1884\n  port: 1885\n")
    assert "line 8: mqtt.port is given twice (also on line 7)" in nested


# --- the file ---------------------------------------------------------------------------------

@pytest.mark.parametrize("text,where,advice", [
    ("mqtt:\n  port: [1884\n", "line 8, column 1", "opened on line 7 is never closed"),
    ("mqtt:\n\tport: 1884\n", "line 7, column 1", "replace the tabs with spaces"),
    ("site: a: b\n", "line 6, column 8", "put a value that holds ': ' in quotes"),
    ("site: \"plant\n", "line 7, column 1", "a quote opened on line 6 is never closed"),
    ("mqtt:\n    port: 1\n  host: x\n", "line 8, column 3", "the indentation does not match"),
    ("site: @plant\n", "line 6, column 7", "put the value in quotes"),
])
def test_a_yaml_syntax_error_names_the_file_line_and_column(tmp_path: Path, text: str, where: str,
                                                           advice: str) -> None:
    message = file_error(tmp_path, BASE + text)
    assert f"edge.yaml, {where}: not valid YAML: " in message and advice in message
    assert "<unicode string>" not in message


def test_a_bad_value_in_a_file_names_its_line(tmp_path: Path) -> None:
    message = file_error(tmp_path, BASE + "batch:\n  max_images: -5\n")
    assert message.endswith("edge.yaml, line 7: setting batch.max_images: must be greater than 0, got -5")


def test_a_missing_setting_names_the_line_of_its_group(tmp_path: Path) -> None:
    message = file_error(tmp_path, "site: p\naws:\n  region: eu-west-1\n")
    assert "edge.yaml, line 2: setting aws.source_bucket is empty" in message


def test_a_missing_file_says_to_give_one(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist: give the path of the YAML file with --config FILE"):
        load_config(tmp_path / "none.yaml")


@pytest.mark.parametrize("region", ["eu west 1", "eu-west", "EU-WEST-1", "Frankfurt"])
def test_a_region_that_is_no_region_name_is_refused(region: str) -> None:
    message = error_for(minimal(aws={"region": region}))
    assert message.startswith("setting aws.region: ") and "e.g. region: eu-west-1" in message


@pytest.mark.parametrize("region", ["us-east-1", "eu-central-2", "us-gov-west-1", "ap-southeast-4", "cn-north-1"])
def test_real_region_names_pass(region: str) -> None:
    assert config_from_dict(minimal(aws={"region": region})).aws.region == region


@pytest.mark.parametrize("model", ["PCB", "pcb_line", "", "-pcb", "x" * 41])
def test_a_model_route_that_is_no_route_name_is_refused(model: str) -> None:
    message = error_for(minimal(aws={"model": model}))
    assert message.startswith("setting aws.model: ") and "`batchsight model routes`" in message


def test_the_model_route_is_default_unless_named() -> None:
    assert config_from_dict(minimal()).aws.model == "default"
    pcb = minimal(aws={"model": "pcb-2", "queue_url": "https://sqs.eu-west-1.amazonaws.com/1/plant-work-pcb-2"})
    assert config_from_dict(pcb).aws.model == "pcb-2"


def test_a_route_and_a_queue_of_another_route_are_refused() -> None:
    """Images in another model's queue would be judged by that model: the mismatch is one clear line."""
    stack_queue = minimal(aws={"model": "pcb", "queue_url": "https://sqs.eu-west-1.amazonaws.com/1/plant-ImageQueue-X"})
    assert error_for(stack_queue).startswith("setting aws.queue_url: model route 'pcb' has its own queue")
    route_queue = minimal(aws={"queue_url": "https://sqs.eu-west-1.amazonaws.com/1/plant-work-pcb"})
    assert "set aws.model: pcb" in error_for(route_queue)
