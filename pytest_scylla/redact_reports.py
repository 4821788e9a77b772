"""What pytest writes about a run item, redacted before anyone reads it.

A test report reaches the terminal (tracebacks with every frame's arguments, `-l` locals,
captured output), `--junitxml`, `--json-report` (which keeps its own copy of the captured
streams and log records on the item) and, through xdist, the controller. The plugin's
`pytest_runtest_makereport` wrapper runs outermost and hands this module each report of a
run item, so all of them see redacted text only, once, from one place.

The traceback keeps its structure (the terminal's layout and colours, JUnit's message,
the JSON report's crash entry): the report goes through pytest's own serialization, the
one xdist uses, every string in it is redacted, and it is built back.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from pytest_scylla.redact import Redactor, session_redactor

_REDACTOR_KEY: pytest.StashKey[Redactor] = pytest.StashKey()
# Attributes pytest-json-report keeps on the item and the report (its streams, log, metadata).
JSON_REPORT_EXTRA = "_json_report_extra"


def report_redactor(config: pytest.Config) -> Redactor:
    """The session's redactor for reports: the secrets the environment and the credentials
    file hold when the first report is made (one per config, built once)."""
    redactor = config.stash.get(_REDACTOR_KEY, None)
    if redactor is None:
        redactor = config.stash[_REDACTOR_KEY] = session_redactor()
    return redactor


def redact_report(
    config: pytest.Config,
    item: pytest.Item,
    report: pytest.TestReport,
    json_attributes: tuple[str, ...] = (),
) -> pytest.TestReport:
    """A copy of `report` with every string redacted; the item's captured sections and
    pytest-json-report's data on the item are redacted in place (later stages read them).

    `json_attributes` name report attributes that hold a JSON document as text: they are
    redacted value by value, so a redaction can never break the document.
    """
    redactor = report_redactor(config)
    sections = item._report_sections  # pytest's own list; json-report reads it per stage
    sections[:] = [(when, key, redactor(content)) for when, key, content in sections]
    extra = getattr(item, JSON_REPORT_EXTRA, None)
    if isinstance(extra, dict):
        redacted = redactor.tree(extra)
        extra.clear()
        extra.update(redacted)

    documents = {name: getattr(report, name, None) for name in json_attributes}
    data = config.hook.pytest_report_to_serializable(config=config, report=report)
    if data is None:  # no serializer answered: keep the report, redact what it shows
        report.longrepr = redactor(str(report.longrepr)) if report.longrepr else None
        report.sections = [(key, redactor(content)) for key, content in report.sections]
        rebuilt = report
    else:
        for name in documents:
            data.pop(name, None)
        rebuilt = config.hook.pytest_report_from_serializable(
            config=config, data=redactor.tree(data)
        )
    for name, document in documents.items():
        if isinstance(document, str):
            setattr(rebuilt, name, _redact_json_text(redactor, document))
    return rebuilt


def _redact_json_text(redactor: Redactor, text: str) -> str:
    try:
        document: Any = json.loads(text)
    except ValueError:
        return redactor(text)
    return json.dumps(redactor.tree(document))
