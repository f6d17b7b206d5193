"""``python -m batchsight_tools.demo``: the same as ``batchsight demo``."""
from batchsight_tools.demo import main

raise SystemExit(main())
