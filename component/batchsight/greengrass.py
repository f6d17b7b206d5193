"""The Greengrass adapter: configuration, live updates and lifecycle state over IPC.

Off a device the IPC client cannot exist (its constructor needs the nucleus socket), so it is
only built here, lazily, when ``batchsight run --greengrass`` asks for it; tests hand in a
client of their own through ``client_factory``. The recipe's Run step also writes the
configuration to the file named by BATCHSIGHT_CONFIG, used when IPC is not reachable: all of it
but the models (inference.model, inference.shadow_model), which a lifecycle script must not
name, or Greengrass would restart the component at every model deployment instead of letting
it swap the model in (detector_server.py).
"""
from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from batchsight.config import Config, ConfigError, config_from_dict, load_config

log = logging.getLogger(__name__)
# Keys of the component configuration that belong to Greengrass, not to the program.
_GREENGRASS_KEYS = {"accessControl"}


def program_settings(value: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in value.items() if k not in _GREENGRASS_KEYS}


def _default_client() -> Any:
    from awsiot.greengrasscoreipc.clientv2 import GreengrassCoreIPCClientV2

    return GreengrassCoreIPCClientV2()


class GreengrassIpc:
    """One lazily created IPC client shared by configuration, state and publishing."""

    def __init__(self, client_factory: Callable[[], Any] = _default_client) -> None:
        self._factory = client_factory
        self._client: Any = None

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = self._factory()
        return self._client

    def configuration(self) -> Config:
        value = self.client.get_configuration().value
        return config_from_dict(program_settings(value or {}))

    def on_configuration_change(self, callback: Callable[[Config], None]) -> None:
        """Call ``callback`` with the new, validated configuration after each deployment change."""
        def changed(_event: Any) -> None:
            try:
                callback(self.configuration())
            except ConfigError as exc:
                log.error("new configuration refused; keeping the current one", extra={"error": str(exc)})

        self.client.subscribe_to_configuration_update(on_stream_event=changed)

    def report_state(self, state: str) -> None:
        """RUNNING once serving, ERRORED when it cannot go on (Greengrass then restarts it)."""
        self.client.update_state(state=state)

    def subscribe(self, topic: str, on_message: Callable[[bytes], None]) -> None:
        """Local pub/sub messages on ``topic`` (the bridge brings them from the plant's broker)."""
        def received(event: Any) -> None:
            if event.binary_message is not None:
                on_message(bytes(event.binary_message.message))
            elif event.json_message is not None:
                on_message(json.dumps(event.json_message.message).encode())

        self.client.subscribe_to_topic(topic=topic, on_stream_event=received)

    def publish(self, topic: str, body: bytes) -> None:
        from awsiot.greengrasscoreipc.model import BinaryMessage, PublishMessage

        self.client.publish_to_topic(topic=topic, publish_message=PublishMessage(
            binary_message=BinaryMessage(message=body)))


def load_greengrass_config(ipc: GreengrassIpc) -> tuple[Config, GreengrassIpc | None]:
    """The configuration, and the IPC adapter when the nucleus answered (None on the fallback)."""
    try:
        return ipc.configuration(), ipc
    except (KeyError, OSError, ConnectionError) as exc:
        fallback = os.environ.get("BATCHSIGHT_CONFIG", "")
        if not fallback:
            raise ConfigError("Greengrass IPC is not reachable and BATCHSIGHT_CONFIG is not set; "
                              "run under Greengrass or use --config FILE") from exc
        log.warning("Greengrass IPC unavailable; using the recipe-written configuration file, which names no "
                    "model: in the edge modes images go to the cloud until IPC answers (restart the component)",
                    extra={"path": fallback, "error": repr(exc)})
        return load_config(Path(fallback)), None
