"""Where alerts go: a local MQTT broker off Greengrass (``mqtt``); Greengrass IPC on a device.

Chosen in one place (``wiring.choose_publisher``); the core only sees ``Publisher``.
"""
from batchsight.publishers.base import Publisher, PublishError

__all__ = ["Publisher", "PublishError"]
