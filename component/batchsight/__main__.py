"""``python -m batchsight``: the same entry point Greengrass' Run lifecycle uses."""
from batchsight.cli import main

raise SystemExit(main())
