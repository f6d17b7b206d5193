"""Model backends behind one interface; chosen by the MODEL_BACKEND setting in one place.

MODEL_BACKEND is one of the built-in names (``lambda``, ``lookoutvision``, ``sagemaker``,
``sagemaker-serverless``) or
``plugin:package.module:ClassName``: a plant's own backend, imported from the function's
code package (or a Lambda layer). The class must subclass
:class:`batchsight_pipeline.backends.base.ModelBackend` and fill in its hooks (``_start``,
``_describe``, ``_stop``, ``detect``, ``model_id`` and the classmethod
``from_env(*, start_timeout_seconds)`` that reads its own settings from the environment),
as the built-in backends do. The demo's ``local`` backend is such a plug-in, from the tools::

    MODEL_BACKEND=plugin:acme_vision.backend:AcmeBackend
"""
from __future__ import annotations

import importlib
import inspect
import re

from batchsight_pipeline.backends.base import ModelBackend, ModelRejectedImage, ModelState
from batchsight_pipeline.environment import SettingsError
from batchsight_pipeline.settings import Settings

__all__ = ["ModelBackend", "ModelRejectedImage", "ModelState", "backend_from_settings",
           "load_plugin_class", "PLUGIN_PREFIX"]

PLUGIN_PREFIX = "plugin:"
BUILT_IN = ("lambda", "lookoutvision", "sagemaker", "sagemaker-serverless")
_DOTTED = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def backend_from_settings(settings: Settings) -> ModelBackend:
    """Build the configured backend; heavy imports stay inside each backend module."""
    timeout = settings.start_timeout_seconds
    if settings.backend == "lambda":
        from batchsight_pipeline.backends.serverless import ServerlessDetectorBackend

        return ServerlessDetectorBackend.from_env(start_timeout_seconds=timeout)
    if settings.backend == "sagemaker":
        from batchsight_pipeline.backends.sagemaker import SageMakerBackend

        return SageMakerBackend.from_env(start_timeout_seconds=timeout)
    if settings.backend == "sagemaker-serverless":
        from batchsight_pipeline.backends.sagemaker_serverless import SageMakerServerlessBackend

        return SageMakerServerlessBackend.from_env(start_timeout_seconds=timeout)
    if settings.backend == "lookoutvision":
        from batchsight_pipeline.backends.lookoutvision import LookoutVisionBackend

        return LookoutVisionBackend.from_env(start_timeout_seconds=timeout)
    if settings.backend.startswith(PLUGIN_PREFIX):
        backend = load_plugin_class(settings.backend).from_env(start_timeout_seconds=timeout)
        if not isinstance(backend, ModelBackend):
            raise SettingsError(f"MODEL_BACKEND={settings.backend!r}: from_env() returned "
                                f"{type(backend).__name__}, not a ModelBackend")
        return backend
    raise SettingsError(f"MODEL_BACKEND={settings.backend!r} is not a known backend; "
                        f"valid values: {', '.join(BUILT_IN)}, or "
                        f"{PLUGIN_PREFIX}package.module:ClassName for a plug-in")


def load_plugin_class(spec: str) -> type[ModelBackend]:
    """Import the class named by ``plugin:package.module:ClassName`` and check its shape."""
    setting = f"MODEL_BACKEND={spec!r}"
    target = spec[len(PLUGIN_PREFIX):] if spec.startswith(PLUGIN_PREFIX) else spec
    module_name, sep, class_name = target.partition(":")
    if not sep or not _DOTTED.match(module_name) or not _IDENTIFIER.match(class_name):
        raise SettingsError(f"{setting} is not a plug-in spec; expected "
                            f"{PLUGIN_PREFIX}package.module:ClassName")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise SettingsError(f"{setting}: cannot import module {module_name!r} ({exc}); "
                            "is it in the function's code package or a layer?") from exc
    cls = getattr(module, class_name, None)
    if cls is None:
        raise SettingsError(f"{setting}: module {module_name!r} has no attribute {class_name!r}")
    if not inspect.isclass(cls) or not issubclass(cls, ModelBackend):
        raise SettingsError(f"{setting}: {module_name}.{class_name} is not a subclass of "
                            "batchsight_pipeline.backends.base.ModelBackend")
    if inspect.isabstract(cls):
        missing = ", ".join(sorted(getattr(cls, "__abstractmethods__", ())))
        raise SettingsError(f"{setting}: {module_name}.{class_name} does not implement {missing}")
    if not callable(getattr(cls, "from_env", None)):
        raise SettingsError(f"{setting}: {module_name}.{class_name} needs a classmethod "
                            "from_env(*, start_timeout_seconds)")
    return cls
