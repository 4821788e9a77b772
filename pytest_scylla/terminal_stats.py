"""A run's passed setup and teardown reports are not kept by pytest's terminal reporter.

The terminal reporter files every report under its outcome's category, and passed setup and
teardown reports under the empty one, for a single use: under each failed test it prints the
captured output of that test's teardown, found by scanning the whole category
(`TerminalReporter._get_teardown_reports`). That scan is once per failure over two reports
per run, quadratic in a study: a regenerate of 10,000 runs with 225 failures spent 2.5 s of
its end there (profiled), and the 20,000 reports stay in memory for every full garbage
collection to walk while the runs go.

A report with no captured sections prints nothing there, so a run's (an item marked
`scylla`) is taken back out of the category as soon as the terminal reporter has filed it.
What the terminal shows is unchanged; other tests' reports are left as they are.
"""

from __future__ import annotations

from typing import Any

import pytest

from pytest_scylla.ci_report import RUN_MARKER  # every run item carries it

UNCATEGORIZED = ""  # the terminal reporter's category of passed setup and teardown reports


class RunReportPruner:
    def __init__(self, config: pytest.Config) -> None:
        self._config = config
        self._stats: dict[str, list[Any]] | None = None

    @pytest.hookimpl(trylast=True)  # after the terminal reporter has filed the report
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when == "call" or not report.passed or report.sections:
            return
        if RUN_MARKER not in report.keywords:
            return
        filed = self._terminal_stats().get(UNCATEGORIZED)
        if filed and filed[-1] is report:
            filed.pop()

    def _terminal_stats(self) -> dict[str, list[Any]]:
        if self._stats is None:
            # Looked up at the first report: the reporter registers itself during configure.
            reporter = self._config.pluginmanager.get_plugin("terminalreporter")
            stats = getattr(reporter, "stats", None)
            self._stats = stats if isinstance(stats, dict) else {}
        return self._stats
