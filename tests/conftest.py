"""Shared fixtures: one local cloud (moto server with the real stack) and real MQTT brokers.

moto keeps its state per process, so the whole session shares one LocalCloud; each test
that uses it starts from clean queues, buckets and model-hosting state.
"""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.support import CloudFixture

if TYPE_CHECKING:
    from batchsight_tools.localcloud.hmi import Subscriber


@pytest.fixture(scope="session")
def fitted_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from batchsight_detector import fit
    from batchsight_tools.synth import generate_training_set

    path = tmp_path_factory.mktemp("model") / "detector.npz"
    fit(generate_training_set(30, size=128, seed=3), working_size=64).save(path)
    return path


@pytest.fixture(scope="session")
def local_cloud_session(tmp_path_factory: pytest.TempPathFactory, fitted_model: Path) -> Iterator[CloudFixture]:
    from batchsight_tools.localcloud.stack import LocalCloud

    state_dir = tmp_path_factory.mktemp("hosting")
    cloud = LocalCloud(parameters={"PollSeconds": "1", "DrainWorkers": "2", "DetectTps": "50",
                                   "ModelBackend": "local"},
                       function_environment={"LOCAL_MODEL_PATH": str(fitted_model),
                                             "LOCAL_MODEL_STATE_DIR": str(state_dir),
                                             "LOCAL_MODEL_STARTUP_SECONDS": "1",
                                             "POWERTOOLS_LOG_LEVEL": "WARNING"})
    outputs = cloud.start()
    yield CloudFixture(cloud, outputs, fitted_model, state_dir)
    cloud.stop()


@pytest.fixture
def local_cloud(local_cloud_session: CloudFixture) -> Iterator[CloudFixture]:
    local_cloud_session.reset()
    yield local_cloud_session
    local_cloud_session.wait_for_executions()  # results reach MQTT before the last stop runs
    assert local_cloud_session.hosting_state() == "STOPPED", "a test left the model hosted"


@pytest.fixture
def mqtt_broker() -> Iterator[Any]:
    from batchsight_tools.localcloud.broker import MqttBroker

    with MqttBroker() as broker:
        yield broker


@pytest.fixture
def hmi(mqtt_broker: Any) -> Iterator[Subscriber]:
    """An HMI on the broker, listening to what the edge component publishes for inspection."""
    from tests.edge_process import listen

    subscriber = listen(mqtt_broker.port)
    yield subscriber
    subscriber.stop()
