"""What cloud/template.yaml says that the bill depends on: function sizes, schedules, alarms.

Read from the template as deployed (its parameter defaults, and its conditions for the backend
given), so a bigger function, one more alarm or a shorter reaper schedule changes the figures
without touching the cost model.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any

from batchsight_tools.localcloud.template import evaluate_condition, load_template, resolve


@dataclass(frozen=True)
class StackShape:
    memory_mb: int = 1024  # Globals: every function but the drain
    arch: str = "x86_64"  # Globals: Architectures
    drain_memory_mb: int = 1769  # DrainMemorySize
    reaper_seconds: float = 900.0  # ReaperScheduleExpression
    alarm_metrics: int = 9  # what CloudWatch bills alarms by: the metrics each one reads
    dashboards: int = 1
    kms_keys: int = 1
    email_subscriptions: int = 0  # NotificationEmail: none by default
    images_moved: bool = True  # ImageUpload=source-bucket: the drain copies each image to the final bucket

    def with_drain_memory(self, memory_mb: int) -> StackShape:
        return replace(self, drain_memory_mb=int(memory_mb))


def rate_seconds(expression: str) -> float:
    """'rate(1 hour)' -> 3600; a cron() schedule is not modelled."""
    if not expression.startswith("rate(") or not expression.endswith(")"):
        raise ValueError(f"schedule {expression!r}: only rate(...) expressions are modelled")
    value, unit = expression[5:-1].split()
    scale = {"minute": 60, "minutes": 60, "hour": 3600, "hours": 3600, "day": 86400, "days": 86400}
    return float(value) * scale[unit]


def parameter_defaults(template: dict[str, Any]) -> dict[str, Any]:
    return {name: p.get("Default") for name, p in template["Parameters"].items()}


def alarm_metrics(alarm: dict[str, Any]) -> int:
    """A plain alarm reads one metric; a metric-math alarm is billed for each metric it reads."""
    metrics = alarm["Properties"].get("Metrics")
    return sum(1 for m in metrics if "MetricStat" in m) if metrics else 1


@lru_cache(maxsize=8)
def template_shape(backend: str | None = None, *, dashboard: bool | None = None,
                   image_upload: str | None = None) -> StackShape:
    """The stack deployed with the template's defaults, and ``ModelBackend`` when given (the alarms
    read what the backend publishes), ``Dashboard`` and ``ImageUpload`` when given."""
    template = load_template()
    defaults = parameter_defaults(template)
    defaults["ModelBackend"] = backend or defaults["ModelBackend"]
    if dashboard is not None:
        defaults["Dashboard"] = "true" if dashboard else "false"
    if image_upload is not None:
        defaults["ImageUpload"] = image_upload
    function = template.get("Globals", {}).get("Function", {})
    conditions = template.get("Conditions", {})

    def lookup(name: str, _attribute: str | None) -> str:
        return str(defaults.get(name, name))

    def condition(name: str) -> bool:
        return evaluate_condition(conditions[name], lookup, conditions)

    def of_type(kind: str) -> list[dict[str, Any]]:
        """The resources of ``kind`` the stack has (a resource's own Condition holds)."""
        return [r for r in template["Resources"].values()
                if r.get("Type") == kind and ("Condition" not in r or condition(r["Condition"]))]

    return StackShape(
        memory_mb=int(function.get("MemorySize", 128)),
        arch=str((function.get("Architectures") or ["x86_64"])[0]),
        drain_memory_mb=int(defaults["DrainMemorySize"]),
        reaper_seconds=rate_seconds(str(defaults["ReaperScheduleExpression"])),
        alarm_metrics=sum(alarm_metrics({"Properties": {"Metrics": resolve(a["Properties"].get("Metrics"), lookup,
                                                                           condition)}})
                          for a in of_type("AWS::CloudWatch::Alarm")),
        dashboards=len(of_type("AWS::CloudWatch::Dashboard")),
        kms_keys=len(of_type("AWS::KMS::Key")),
        email_subscriptions=1 if defaults.get("NotificationEmail") else 0,
        images_moved=not condition("UploadsToFinalBucket"))
