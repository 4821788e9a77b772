from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

UPSTREAM = Path(__file__).resolve().parents[2] / "shared" / "data" / "upstream"

# Imported once here: pytester's in-process runs drop modules imported after this point, and
# re-importing scipy for every run would cost most of a second each time (numpy's C parts
# cannot be loaded twice at all). stats.py imports scipy only when it compares tiers.
import scipy.stats  # noqa: E402, F401

import pytest_scylla.aggregate  # noqa: E402
import pytest_scylla.report.html  # noqa: E402
import pytest_scylla.report.markdown  # noqa: E402, F401


@pytest.fixture(autouse=True)
def _no_ci_step_summary(monkeypatch: pytest.MonkeyPatch) -> None:
    """This suite's own sessions never append to the CI job's real step summary."""
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
