"""Model backends behind one interface; chosen by the MODEL_BACKEND setting in one place."""
from __future__ import annotations

from batchsight_cloud.backends.base import ModelBackend, ModelRejectedImage, ModelState
from batchsight_cloud.settings import Settings, SettingsError

__all__ = ["ModelBackend", "ModelRejectedImage", "ModelState", "backend_from_settings"]


def backend_from_settings(settings: Settings) -> ModelBackend:
    """Build the configured backend; heavy imports stay inside each backend module."""
    if settings.backend == "local":
        from batchsight_cloud.backends.local import LocalBackend

        return LocalBackend.from_env(start_timeout_seconds=settings.start_timeout_seconds)
    raise SettingsError(f"MODEL_BACKEND={settings.backend!r} is not available in this build; "
                        "use 'local' (sagemaker and lookoutvision are planned backends)")
