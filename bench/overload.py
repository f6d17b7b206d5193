"""Overload of the real pipeline under moto: twice one unit's rate for 30 minutes, scaling to 2 units.

The local cloud (moto server, the real state machine, each function's ``app.py`` in-process, the
local model backend) with one unit draining 1 image/s (DetectTps) and MaxScaleUnits 2; a feeder
uploads and enqueues images as gateways do, at twice one unit's rate; the gateway's own
Housekeeper and LossCheck read the pipeline status. It prints a table over time (arrivals,
results, the backlog, units and the ``Overloaded`` metric, what the gateway said) and a summary:
the largest backlog against everything sent, when the alarm's metric and the backpressure reached
the gateway, images lost (must be 0), one result per image, the model stopped at the end, and the
drain at the ceiling against its configured capacity. Exit status 0 when every check holds. The
code is ``batchsight_tools.bench.overload`` (tools/batchsight_tools/bench/overload/).

    python bench/overload.py                       # 30 min at 2/s, ceiling 2 units
    python bench/overload.py --minutes 5 --rate 3  # shorter, beyond the ceiling
"""
from __future__ import annotations

import sys

from batchsight_tools.bench.overload.cli import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], description=__doc__.splitlines()[0]))
