"""The Greengrass adapter for configuration: IPC GetConfiguration, created lazily.

Off a device the IPC client cannot exist (its constructor needs the nucleus socket), so it
is only built here, when ``batchsight run --greengrass`` asks for it. The recipe's Run step
also writes the same configuration to the file named by BATCHSIGHT_CONFIG, which is used
when IPC is not reachable.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from batchsight.config import Config, ConfigError, config_from_dict, load_config

log = logging.getLogger(__name__)
# Keys of the component configuration that belong to Greengrass, not to the program.
_GREENGRASS_KEYS = {"accessControl"}


def program_settings(value: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in value.items() if k not in _GREENGRASS_KEYS}


def load_greengrass_config() -> Config:
    try:
        from awsiot.greengrasscoreipc.clientv2 import GreengrassCoreIPCClientV2

        value = GreengrassCoreIPCClientV2().get_configuration().value
    except (KeyError, OSError, ConnectionError) as exc:
        fallback = os.environ.get("BATCHSIGHT_CONFIG", "")
        if not fallback:
            raise ConfigError("Greengrass IPC is not reachable and BATCHSIGHT_CONFIG is not set; "
                              "run under Greengrass or use --config FILE") from exc
        log.warning("Greengrass IPC unavailable; using the recipe-written configuration file",
                    extra={"path": fallback, "error": repr(exc)})
        return load_config(Path(fallback))
    return config_from_dict(program_settings(value))
