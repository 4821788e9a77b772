from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

UPSTREAM = Path(__file__).resolve().parents[2] / "shared" / "data" / "upstream"

# Imported once here: pytester's in-process runs drop modules imported after this point, and
# re-importing scipy for every run would cost most of a second each time (numpy's C parts
# cannot be loaded twice at all). stats.py imports scipy only when it compares tiers.
import scipy.stats  # noqa: E402, F401

import pytest_scylla.aggregate  # noqa: E402
import pytest_scylla.report.html  # noqa: E402
import pytest_scylla.report.markdown  # noqa: E402, F401
