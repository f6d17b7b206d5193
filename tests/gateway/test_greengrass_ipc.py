"""The Greengrass adapter, driven by a stand-in IPC client that speaks the real model types.

The nucleus cannot run here, so the stand-in replaces GreengrassCoreIPCClientV2 at the adapter
boundary; it accepts only the awsiot model classes the real client takes and returns.
"""
from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Any

import pytest
from awsiot.greengrasscoreipc import model
from awsiot.greengrasscoreipc.clientv2 import GreengrassCoreIPCClientV2

from batchsight.config import ConfigError, config_from_dict
from batchsight.greengrass import GreengrassIpc, load_greengrass_config
from batchsight.publishers.greengrass import GreengrassPublisher
from batchsight.runtime import Component


class IpcStandIn:
    """Records calls; signatures are checked against the real client's."""

    def __init__(self, configuration: dict[str, Any]) -> None:
        self.configuration = configuration
        self.published: list[tuple[str, model.PublishMessage]] = []
        self.states: list[str] = []
        self.on_update: Any = None
        self.topic_handlers: dict[str, Any] = {}

    def _check(self, name: str, **kwargs: Any) -> None:
        inspect.signature(getattr(GreengrassCoreIPCClientV2, name)).bind(None, **kwargs)

    def get_configuration(self, **kwargs: Any) -> model.GetConfigurationResponse:
        self._check("get_configuration", **kwargs)
        return model.GetConfigurationResponse(component_name="com.batchsight.EdgeInspector", value=self.configuration)

    def publish_to_topic(self, **kwargs: Any) -> model.PublishToTopicResponse:
        self._check("publish_to_topic", **kwargs)
        assert isinstance(kwargs["publish_message"], model.PublishMessage)
        self.published.append((kwargs["topic"], kwargs["publish_message"]))
        return model.PublishToTopicResponse()

    def update_state(self, **kwargs: Any) -> model.UpdateStateResponse:
        self._check("update_state", **kwargs)
        assert kwargs["state"] in (model.ReportedLifecycleState.RUNNING, model.ReportedLifecycleState.ERRORED)
        self.states.append(kwargs["state"])
        return model.UpdateStateResponse()

    def subscribe_to_topic(self, **kwargs: Any) -> tuple[Any, Any]:
        self._check("subscribe_to_topic", **kwargs)
        self.topic_handlers[kwargs["topic"]] = kwargs["on_stream_event"]
        return model.SubscribeToTopicResponse(), None

    def subscribe_to_configuration_update(self, **kwargs: Any) -> tuple[Any, Any]:
        self._check("subscribe_to_configuration_update", **kwargs)
        self.on_update = kwargs["on_stream_event"]
        return model.SubscribeToConfigurationUpdateResponse(), None


def _device_configuration(tmp_path: Path, **batch: Any) -> dict[str, Any]:
    return {"site": "plant1", "line": "line1", "device": "gw1",
            "drop_folder": str(tmp_path / "drop"), "work_folder": str(tmp_path / "work"),
            "aws": {"source_bucket": "s", "final_bucket": "f", "queue_url": "https://q",
                    "state_machine_arn": "arn:aws:states:us-east-1:1:stateMachine:m"},
            "batch": {"max_images": 500.0, **batch},  # Greengrass hands numbers back as floats
            "accessControl": {"aws.greengrass.ipc.pubsub": {}}}


def test_configuration_comes_from_ipc_without_greengrass_keys(tmp_path: Path) -> None:
    stand_in = IpcStandIn(_device_configuration(tmp_path))
    config, ipc = load_greengrass_config(GreengrassIpc(lambda: stand_in))
    assert ipc is not None and config.batch.max_images == 500 and config.device == "gw1"


def test_without_a_nucleus_the_recipe_written_file_is_used(tmp_path: Path, monkeypatch) -> None:
    def no_nucleus() -> Any:
        raise KeyError("AWS_GG_NUCLEUS_DOMAIN_SOCKET_FILEPATH_FOR_COMPONENT")

    monkeypatch.delenv("BATCHSIGHT_CONFIG", raising=False)
    with pytest.raises(ConfigError, match="BATCHSIGHT_CONFIG"):
        load_greengrass_config(GreengrassIpc(no_nucleus))
    written = tmp_path / "greengrass-config.yaml"
    settings = _device_configuration(tmp_path)
    del settings["accessControl"]
    written.write_text(json.dumps(settings))
    monkeypatch.setenv("BATCHSIGHT_CONFIG", str(written))
    config, ipc = load_greengrass_config(GreengrassIpc(no_nucleus))
    assert ipc is None and config.device == "gw1"


def test_publisher_sends_the_exact_json_bytes_on_local_pubsub(tmp_path: Path) -> None:
    stand_in = IpcStandIn(_device_configuration(tmp_path))
    GreengrassPublisher(GreengrassIpc(lambda: stand_in)).publish("factory/p/l/d/inspection/alert", {"v": 1})
    (topic, message), = stand_in.published
    assert topic == "factory/p/l/d/inspection/alert"
    assert json.loads(message.binary_message.message) == {"v": 1}


def test_state_and_live_configuration_update(tmp_path: Path) -> None:
    stand_in = IpcStandIn(_device_configuration(tmp_path, max_age_seconds=900))
    ipc = GreengrassIpc(lambda: stand_in)
    config, _ = load_greengrass_config(ipc)
    component = Component(config, publisher=GreengrassPublisher(ipc), clients={"s3": None, "sqs": None,
                                                                                "stepfunctions": None})
    ipc.on_configuration_change(component.apply_config)
    ipc.report_state("RUNNING")
    stand_in.configuration = {**_device_configuration(tmp_path, max_age_seconds=30),
                              "device": "renamed", "alerts": {"min_confidence": 0.7}}
    stand_in.on_update(model.ConfigurationUpdateEvents())
    assert component.policy.settings.max_age_seconds == 30
    assert component.alerter.config.alerts.min_confidence == 0.7
    assert component.config.device == "gw1", "identity changes wait for the restart Greengrass makes"
    stand_in.configuration = {**_device_configuration(tmp_path), "batch": {"max_images": -1}}
    stand_in.on_update(model.ConfigurationUpdateEvents())  # refused, logged, nothing changes
    assert component.config.batch.max_images == 500
    assert stand_in.states == ["RUNNING"]
    feedback = stand_in.topic_handlers["factory/plant1/line1/gw1/inspection/feedback"]
    feedback(model.SubscriptionResponseMessage(binary_message=model.BinaryMessage(message=b"{broken")))
    component._answer_feedback()
    (topic, reply), = [(t, m) for t, m in stand_in.published if t.endswith("/feedback/response")]
    assert json.loads(reply.binary_message.message)["ok"] is False
    component.feedback.close()
    component.journal.close()


def test_defaults_in_the_recipe_are_accepted_by_the_program() -> None:
    assert config_from_dict({"aws": {"source_bucket": "s", "final_bucket": "f", "queue_url": "q",
                                     "state_machine_arn": "a"}}).site == "plant1"
