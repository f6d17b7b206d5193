"""``python -m batchsight_tools.report``: the same command as ``batchsight report``."""
from __future__ import annotations

import sys

from batchsight_tools.report.cli import main

sys.exit(main())
