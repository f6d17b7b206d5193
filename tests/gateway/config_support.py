"""What the configuration tests share: the smallest valid configuration, and the error a bad one gives."""
from __future__ import annotations

from typing import Any

import pytest

from batchsight.config import ConfigError, config_from_dict

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
