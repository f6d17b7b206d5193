"""wiring.py chooses the adapters in one place, and a configuration update reaches every part of
the running component through one path (Component.apply_config, live_config)."""
from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from batchsight import runtime, wiring
from batchsight.config import Config, ConfigError
from batchsight.greengrass import GreengrassIpc
from batchsight.live_config import RESTART_SETTINGS, Reconfigurable, reloadable
from batchsight.publishers.greengrass import GreengrassPublisher
from batchsight.publishers.mqtt import MqttPublisher
from batchsight.runtime import Component
from tests.gateway.test_outbox import FakeBroker

NO_AWS: dict[str, Any] = {"s3": None, "sqs": None, "stepfunctions": None}
GROUPS = {type(getattr(Config(), f.name)): f.name for f in dataclasses.fields(Config)
          if dataclasses.is_dataclass(getattr(Config(), f.name))}


class Broker(FakeBroker):
    """A broker stand-in the component can subscribe on (operator feedback)."""

    def subscribe(self, topic: str, on_message: Callable[[bytes], None]) -> None:
        pass


class NucleusStandIn:
    """The two IPC calls the lifecycle makes, recorded."""

    def __init__(self) -> None:
        self.states: list[str] = []
        self.on_update: Any = None

    def update_state(self, *, state: str) -> None:
        self.states.append(state)

    def subscribe_to_configuration_update(self, *, on_stream_event: Any) -> None:
        self.on_update = on_stream_event


@pytest.fixture
def component(config: Config) -> Iterator[Component]:
    component = Component(config, publisher=Broker(), clients=NO_AWS)
    yield component
    component.feedback.close()
    component.journal.close()


def updated(config: Config) -> Config:
    """Every setting a running component takes changed from its default, plus the log level."""
    def group(name: str, **values: Any) -> Any:
        return dataclasses.replace(getattr(config, name), **values)

    return dataclasses.replace(
        config, log_level="WARNING",
        batch=group("batch", interval_seconds=60.0, max_images=20, max_age_seconds=30.0, follow=False),
        ingest=group("ingest", stable_seconds=0.5, rescan_seconds=5.0, max_bytes=1024 * 1024, min_side=32),
        results=group("results", poll_seconds=2.0, timeout_seconds=600.0),
        alerts=group("alerts", min_confidence=0.7),
        retention=group("retention", after_result="archive", journal_days=7.0),
        disk=group("disk", quota_bytes=10 ** 9, min_free_bytes=10 ** 8))


def settings_held(part: object) -> list[tuple[str, object]]:
    """The configuration a part keeps: a whole Config, or one of its groups (batch, ingest, ...)."""
    held = vars(part).items() if hasattr(part, "__dict__") else ()
    return [(name, value) for name, value in held if isinstance(value, (Config, *GROUPS))]


# --- adapters, chosen in one place -------------------------------------------------------------------

def test_on_a_device_alerts_go_to_greengrass_pubsub_elsewhere_to_an_mqtt_broker(config: Config) -> None:
    ipc = GreengrassIpc(NucleusStandIn)
    assert isinstance(wiring.choose_publisher(config, ipc), GreengrassPublisher)
    direct = wiring.choose_publisher(config, None)
    assert isinstance(direct, MqttPublisher)
    direct.close()


def test_the_configuration_comes_from_a_file_unless_on_a_device(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--config FILE"):
        wiring.configuration(None)
    with pytest.raises(ConfigError, match="does not exist"):
        wiring.configuration(str(tmp_path / "missing.yaml"))


def test_runtime_still_offers_the_adapter_factories_bench_and_tests_import_from_it() -> None:
    assert runtime.aws_clients is wiring.aws_clients and runtime.build_publisher is wiring.build_publisher


@pytest.mark.parametrize("fails", [False, True], ids=["stopped", "failed"])
def test_on_a_device_greengrass_hears_the_lifecycle_and_sends_updates_to_the_component(fails: bool) -> None:
    nucleus = NucleusStandIn()

    class Loop:
        def __init__(self) -> None:
            self.updates: list[Config] = []

        def request_config(self, config: Config) -> None:
            self.updates.append(config)

        def run(self) -> None:
            if fails:
                raise RuntimeError("the loop died")

    loop = Loop()
    if fails:
        with pytest.raises(RuntimeError):
            wiring.run(loop, GreengrassIpc(lambda: nucleus))  # type: ignore[arg-type]
    else:
        wiring.run(loop, GreengrassIpc(lambda: nucleus))  # type: ignore[arg-type]
    assert nucleus.states == (["RUNNING", "ERRORED"] if fails else ["RUNNING"])
    assert nucleus.on_update is not None, "configuration updates are subscribed to"


# --- one path for a configuration update --------------------------------------------------------------

def test_an_update_reaches_every_part_that_holds_settings_the_watcher_included(component: Component,
                                                                                config: Config) -> None:
    """Found by looking at the component's parts, not from a list: a part added later that keeps
    settings but does not take updates fails here."""
    holders = {name: part for name, part in vars(component).items()
               if settings_held(part) and part is not component.config}
    assert {"ingestor", "verifier", "link", "puller", "alerter", "judge", "feedback", "detector_server",
            "disk", "housekeeper", "policy"} <= set(holders)
    not_updatable = [name for name, part in holders.items() if not isinstance(part, Reconfigurable)]
    assert not_updatable == []
    new = updated(config)
    assert new != config

    component.apply_config(new)

    assert component.config == new
    for name, part in holders.items():
        for attribute, held in settings_held(part):
            if isinstance(held, Config):
                assert held is component.config, f"{name}.{attribute} kept the old configuration"
            else:
                assert held == getattr(new, GROUPS[type(held)]), f"{name}.{attribute} kept the old settings"
    watcher = component.watcher
    assert isinstance(watcher, Reconfigurable)
    assert (watcher.tracker.stable_seconds, watcher.rescan_seconds) == (0.5, 5.0)
    assert logging.getLogger().level == logging.WARNING
    logging.getLogger().setLevel(logging.INFO)


def test_settings_only_a_restart_changes_are_kept_and_reported(component: Component, config: Config,
                                                              tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    new = dataclasses.replace(
        updated(config), device="renamed", drop_folder=tmp_path / "elsewhere",
        ingest=dataclasses.replace(updated(config).ingest, subfolders=False),
        mqtt=dataclasses.replace(config.mqtt, port=8883))
    with caplog.at_level(logging.WARNING, logger="batchsight.runtime"):
        component.apply_config(new)
    [warning] = [r for r in caplog.records if "need a restart" in r.getMessage()]
    assert vars(warning)["settings"] == ["device", "drop_folder", "mqtt", "ingest.subfolders"]
    assert (component.config.device, component.config.drop_folder) == (config.device, config.drop_folder)
    assert component.config.mqtt == config.mqtt and component.config.ingest.subfolders is True
    assert component.watcher.subfolders is True
    assert component.config.ingest.stable_seconds == 0.5, "the other ingest settings are taken"
    assert component.ingestor.config is component.config
    logging.getLogger().setLevel(logging.INFO)


def test_every_restart_setting_names_a_real_setting(config: Config) -> None:
    applied, ignored = reloadable(config, config)
    assert applied == config and ignored == []
    for name in RESTART_SETTINGS:
        group, _, field = name.partition(".")
        assert hasattr(config, group) and (not field or hasattr(getattr(config, group), field)), name


# --- when an update is applied: between two ticks, from IPC or from the file after SIGHUP ----------

def _file(tmp_path: Path, **changes: Any) -> Path:
    import yaml

    from tests.gateway.ingest_support import AWS

    data = {"drop_folder": str(tmp_path / "drop"), "work_folder": str(tmp_path / "work"), "aws": AWS, **changes}
    path = tmp_path / "edge.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_sighup_reads_the_configuration_file_again_and_the_loop_applies_it(
        config: Config, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    import os
    import signal

    component = Component(config, publisher=Broker(), clients=NO_AWS, config_file=_file(tmp_path))
    saved = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
    try:
        component.install_signal_handlers()
        _file(tmp_path, batch={"max_images": 20}, inference={"model": "s3://models/models/castings/4/",
                                                             "mode": "edge", "endpoint": "http://127.0.0.1:8099"})
        with caplog.at_level(logging.INFO, logger="batchsight.runtime"):
            os.kill(os.getpid(), signal.SIGHUP)
            assert component.wake.is_set() and component.config.batch.max_images == 500, "the handler only asks"
            component._take_config()  # the loop's first step of a tick
        assert component.config.batch.max_images == 20 and component.policy.settings.max_images == 20
        assert component.config.inference.model == "s3://models/models/castings/4/", "a model is taken live"
        assert component.config.inference.mode == "cloud", "the mode needs a restart"
        messages = [r.getMessage() for r in caplog.records]
        assert "SIGHUP: reading the configuration file again" in messages
        assert vars(next(r for r in caplog.records if "need a restart" in r.getMessage()))["settings"] == [
            "inference.mode", "inference.endpoint"]
        (tmp_path / "edge.yaml").write_text("batch:\n  max_images: [")  # a broken edit: kept as it was
        component._reread = True
        with caplog.at_level(logging.ERROR, logger="batchsight.runtime"):
            component._take_config()
        assert any("configuration file refused; keeping the current configuration" in r.getMessage()
                   for r in caplog.records)
        assert component.config.batch.max_images == 20
    finally:
        for signum, handler in saved.items():
            signal.signal(signum, handler)
        component.feedback.close()
        component.journal.close()
        logging.getLogger().setLevel(logging.INFO)


def test_an_update_from_greengrass_waits_for_the_loop(component: Component, config: Config) -> None:
    import threading

    new = updated(config)
    thread = threading.Thread(target=component.request_config, args=(new,))  # the IPC stream's thread
    thread.start()
    thread.join()
    assert component.config == config and component.wake.is_set(), "nothing changes under the loop's feet"
    component._take_config()
    assert component.config == new
    logging.getLogger().setLevel(logging.INFO)
