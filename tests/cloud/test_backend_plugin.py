"""MODEL_BACKEND=plugin:package.module:ClassName brings a plant's own model backend."""
from __future__ import annotations

import os
from typing import Any

import pytest

from batchsight_pipeline.backends import backend_from_settings, load_plugin_class
from batchsight_pipeline.backends.base import HOSTED, STOPPED, ModelBackend
from batchsight_pipeline.settings import Settings, SettingsError

THIS = __name__  # "tests.cloud.test_backend_plugin" (pytest's pythonpath has the repo root)


class EchoBackend(ModelBackend):
    """A minimal plug-in: hosted between start and stop, never anomalous."""

    name = "echo"

    def __init__(self, *, label: str, start_timeout_seconds: float) -> None:
        super().__init__(start_timeout_seconds=start_timeout_seconds)
        self.label = label
        self.hosted = False

    @classmethod
    def from_env(cls, *, start_timeout_seconds: float) -> EchoBackend:
        return cls(label=os.environ.get("ECHO_LABEL", "echo-model"),
                   start_timeout_seconds=start_timeout_seconds)

    @property
    def model_id(self) -> str:
        return self.label

    def _start(self, run_token: str) -> str:
        self.hosted = True
        return HOSTED

    def _describe(self) -> tuple[str, str]:
        return (HOSTED, "") if self.hosted else (STOPPED, "not hosted")

    def _stop(self) -> None:
        self.hosted = False

    def detect(self, image: bytes, *, content_type: str) -> dict[str, Any]:
        return {"Source": {"Type": "direct"}, "IsAnomalous": False, "Confidence": 0.5}


class NotABackend:
    @classmethod
    def from_env(cls, *, start_timeout_seconds: float) -> NotABackend:
        return cls()


class HalfBackend(ModelBackend):  # forgets the hooks
    @classmethod
    def from_env(cls, *, start_timeout_seconds: float) -> HalfBackend:
        return cls(start_timeout_seconds=start_timeout_seconds)


class NoFromEnv(EchoBackend):
    from_env = None  # type: ignore[assignment]


class FromEnvReturnsWrongType(EchoBackend):
    @classmethod
    def from_env(cls, *, start_timeout_seconds: float) -> Any:
        return object()


not_a_class = 42


def settings(backend: str) -> Settings:
    return Settings(queue_url="q", dead_letter_queue_url="dlq", source_bucket="s", final_bucket="f",
                    backend=backend, poll_seconds=1, start_timeout_seconds=77, drain_workers=2,
                    detect_concurrency=4, detect_tps=10, lock_table="t")


def test_plugin_backend_is_imported_built_from_env_and_drives_the_contract(monkeypatch) -> None:
    monkeypatch.setenv("ECHO_LABEL", "plant-model-3")
    backend = backend_from_settings(settings(f"plugin:{THIS}:EchoBackend"))
    assert isinstance(backend, EchoBackend)
    assert backend.start_timeout_seconds == 77
    assert backend.model_id == "plant-model-3"
    state = backend.start(run_token="exec-1")
    assert (state.backend, state.model_id, state.status) == ("echo", "plant-model-3", HOSTED)
    assert backend.status(state).status == HOSTED
    assert backend.detect(b"\xff\xd8", content_type="image/jpeg")["IsAnomalous"] is False
    assert backend.stop().status == STOPPED


def test_any_importable_dotted_module_works_including_the_built_in_backends() -> None:
    from batchsight_tools.localcloud.local_backend import LocalBackend

    assert load_plugin_class("plugin:batchsight_tools.localcloud.local_backend:LocalBackend") is LocalBackend


@pytest.mark.parametrize("spec", [
    "plugin:",
    "plugin:just_a_module",
    "plugin::EchoBackend",
    f"plugin:{THIS}:",
    f"plugin:{THIS}:Echo.Backend",
    "plugin:bad module:Cls",
    "plugin:pkg..mod:Cls",
])
def test_malformed_specs_are_rejected_with_the_expected_form(spec: str) -> None:
    with pytest.raises(SettingsError, match=r"package\.module:ClassName"):
        backend_from_settings(settings(spec))


def test_missing_module_names_the_module() -> None:
    with pytest.raises(SettingsError, match="cannot import module 'no_such_pkg.backend'"):
        backend_from_settings(settings("plugin:no_such_pkg.backend:Cls"))


def test_missing_class_names_the_class() -> None:
    with pytest.raises(SettingsError, match="has no attribute 'Nope'"):
        backend_from_settings(settings(f"plugin:{THIS}:Nope"))


@pytest.mark.parametrize("name", ["NotABackend", "not_a_class"])
def test_non_model_backend_is_rejected(name: str) -> None:
    with pytest.raises(SettingsError, match="not a subclass of batchsight_pipeline.backends.base.ModelBackend"):
        backend_from_settings(settings(f"plugin:{THIS}:{name}"))


def test_abstract_backend_names_the_missing_hooks() -> None:
    with pytest.raises(SettingsError, match="does not implement _describe, _start, _stop, detect, model_id"):
        backend_from_settings(settings(f"plugin:{THIS}:HalfBackend"))


def test_backend_without_from_env_classmethod_is_rejected() -> None:
    with pytest.raises(SettingsError, match="needs a classmethod from_env"):
        backend_from_settings(settings(f"plugin:{THIS}:NoFromEnv"))


def test_from_env_must_return_a_model_backend() -> None:
    with pytest.raises(SettingsError, match="returned object, not a ModelBackend"):
        backend_from_settings(settings(f"plugin:{THIS}:FromEnvReturnsWrongType"))


def test_unknown_name_mentions_the_plugin_form() -> None:
    with pytest.raises(SettingsError, match=r"plugin:package\.module:ClassName"):
        backend_from_settings(settings("tensorflow"))
