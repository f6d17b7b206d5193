"""Model backends behind one interface; chosen by the MODEL_BACKEND setting in one place."""
from __future__ import annotations

from batchsight_cloud.backends.base import ModelBackend, ModelRejectedImage, ModelState
from batchsight_cloud.settings import Settings, SettingsError

__all__ = ["ModelBackend", "ModelRejectedImage", "ModelState", "backend_from_settings"]


def backend_from_settings(settings: Settings) -> ModelBackend:
    """Build the configured backend; heavy imports stay inside each backend module."""
    timeout = settings.start_timeout_seconds
    if settings.backend == "local":
        from batchsight_cloud.backends.local import LocalBackend

        return LocalBackend.from_env(start_timeout_seconds=timeout)
    if settings.backend == "sagemaker":
        from batchsight_cloud.backends.sagemaker import SageMakerBackend

        return SageMakerBackend.from_env(start_timeout_seconds=timeout)
    if settings.backend == "lookoutvision":
        from batchsight_cloud.backends.lookoutvision import LookoutVisionBackend

        return LookoutVisionBackend.from_env(start_timeout_seconds=timeout)
    valid = ("local", "lookoutvision", "sagemaker")
    raise SettingsError(f"MODEL_BACKEND={settings.backend!r} is not a known backend; "
                        f"valid values: {', '.join(valid)}")
