"""``batchsight demo``: the whole product on one machine, with no AWS account.

Fits the detector (on generated parts, or on the photographs of ``--images DIR``), starts the
local cloud (moto server with the stack from cloud/template.yaml) and a real MQTT broker, runs
the edge program as its own process on a drop folder, plays a camera into it, prints the alerts
as they arrive and a markdown summary headed by the date and the command. It exits 0 only if
every image got exactly one result, the alerts match, the model was not left hosted, and
detection on the labelled images reached the floor (options.MIN_RECALL, MIN_PRECISION).

The modules, in the order a run uses them:

- ``options``: the command line, and the checks of every argument before anything starts;
- ``frames``: the --images folder checked, the frames to drop, the model fitted as `batchsight fit` does;
- ``workdir``: the work folder (temp, removed; or --keep DIR);
- ``signals``: SIGTERM/SIGINT become an exception that runs the clean-up;
- ``session``: what starts in which order, all of it on one ExitStack; the exit code;
- ``stage``: the steps: edge configuration, camera, waiting for results, the bucket, the report;
- ``summary``: the markdown table and the checks, with the floor.
"""
from __future__ import annotations

import os
import shlex
import sys

from batchsight_tools.demo.options import parse
from batchsight_tools.demo.session import run


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    # onnxruntime (patchcore) otherwise writes a telemetry session file, .ses, into the temp
    # folder of every process that runs a model: this one and the edge's local detector.
    os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
    args, folder = parse(argv)
    return run(args, folder, shlex.join(["batchsight", "demo", *argv]))


__all__ = ["main"]
