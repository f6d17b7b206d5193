"""Cost model: a discrete-event simulation of hosting cost and image latency on a virtual clock.

It drives the project's own decisions (the gateway's ``BatchPolicy``, the real state machine
definition, CheckWork's ``plan``, the backend contract) over an arrival trace, and compares
batchsight with an always-on model, the AWS sample's hourly policy, and the ideal schedule.
Used by ``batchsight plan`` and bench/cost.py.
"""
from __future__ import annotations

from batchsight_tools.costmodel.billing import Billing
from batchsight_tools.costmodel.compare import Comparison, compare, ratio_line, table
from batchsight_tools.costmodel.edge import EdgeBatching, Uplink
from batchsight_tools.costmodel.model import ModelService, PolicyResult
from batchsight_tools.costmodel.pipeline import CloudSettings, OurPolicy, simulate_ours
from batchsight_tools.costmodel.planner import BudgetTooSmall, Plan, suggest
from batchsight_tools.costmodel.trace import default_day, rate_trace, read_trace, write_trace

__all__ = ["Billing", "BudgetTooSmall", "CloudSettings", "Comparison", "EdgeBatching", "ModelService",
           "OurPolicy", "Plan", "PolicyResult", "Uplink", "compare", "default_day", "rate_trace",
           "ratio_line", "read_trace", "simulate_ours", "suggest", "table", "write_trace"]
