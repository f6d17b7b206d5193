"""A site on one stack: 40 gateways on 3 models, every image's result at its own gateway, by its own model.

The local cloud (moto server, the real state machine, each function's ``app.py`` in-process, the
local model backend) with the stack's own model and two model routes added with `batchsight model
route`; 40 simulated gateways (the component's calls and message shapes, each with its own result
queue) send small batches on their own clocks, rates scaled down to what moto serves on 2 cores.
It prints, per model: gateways, images, results, executions, model starts, hosted time and
latency (enqueue to result at the gateway); then the checks: no image without a result, none
twice, none at another gateway, none judged by another model. Exit status 0 when all hold. The
code is ``batchsight_tools.bench.site`` (tools/batchsight_tools/bench/site/).

    python bench/site.py                                  # 40 gateways, 3 models, 2 minutes
    python bench/site.py --gateways 6 --minutes 0.5       # a quick look
"""
from __future__ import annotations

import sys

from batchsight_tools.bench.site.cli import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], description=__doc__.splitlines()[0]))
