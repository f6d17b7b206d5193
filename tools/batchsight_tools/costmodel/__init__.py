"""Cost model: a discrete-event simulation of what a deployment pays and how long its images wait.

It drives the project's own decisions (the gateway's ``BatchPolicy``, the real state machine
definition, CheckWork's ``plan``, the backend contract) over an arrival trace on a virtual
clock, and charges every call at the list prices of prices.json. Used by ``batchsight plan``
and bench/cost.py. Where things are:

- the simulation: engine.py (the clock), trace.py (arrivals), edge.py (the gateway's cuts),
  asl.py (the state machine walker), services.py (queue, lock, hosting), pipeline.py (our stack),
  baselines.py (the AWS sample's policies), ideal.py (the least hosted time);
- the backends: backends.py (presets), deployment.py (what to deploy, how fast it drains);
- the money: prices.json and prices.py (the price book), usage.py (usage lines and bills),
  meters.py (each service's billing rules), stack_charges.py (our functions' calls),
  gateway_charges.py and result_pull.py (the gateway's), sample_charges.py (the sample's),
  fixed.py (the stack's monthly charges), floor.py (what any design must pay), rows.py (a whole
  bill with latencies);
- the choices: planner.py (hosted start/stop settings), search.py (batch settings with nothing to
  host), recommend.py (the cheapest backend for a target), crossover.py (when hosting wins),
  compare.py and lineup.py (side by side), report.py (the tables), options.py (the shared CLI).
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
