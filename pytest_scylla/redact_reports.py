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

from pytest_scylla.redact import REDACTED, Redactor, session_redactor

_REDACTOR_KEY: pytest.StashKey[Redactor] = pytest.StashKey()
# Attributes pytest-json-report keeps on the item and the report (its streams, log, metadata).
JSON_REPORT_EXTRA = "_json_report_extra"


# What is left of a secret next to a cut shorter than this is not hidden (it would hide
# ordinary text that happens to start like a key, "sk-a...").
MIN_FRAGMENT_CHARS = 4
ELLIPSIS = "..."


class ReportRedactor(Redactor):
    """A Redactor that also hides what is left of a known secret beside "...": pytest
    shortens the reprs of a frame's arguments and locals to 240 characters by cutting out
    their middle, and a cut through a secret leaves pieces no whole-secret match finds."""

    def __call__(self, text: str) -> str:
        text = super().__call__(text)
        if ELLIPSIS not in text or not self.secrets:
            return text
        pieces: list[str] = []
        for index, piece in enumerate(text.split(ELLIPSIS)):
            if index > 0:  # piece follows a cut: may start with a secret's end
                piece = self._hide_tail_of_secret(piece)
            pieces.append(piece)
        for index in range(len(pieces) - 1):  # piece precedes a cut: may end with a start
            pieces[index] = self._hide_head_of_secret(pieces[index])
        return ELLIPSIS.join(pieces)

    def _hide_head_of_secret(self, piece: str) -> str:
        """`piece` with a secret's first part at its end hidden (the longest such part)."""
        for secret in self.secrets:
            head = secret[:MIN_FRAGMENT_CHARS]
            start = piece.find(head, max(0, len(piece) - len(secret)))
            while start != -1:  # earliest first: the longest part
                if secret.startswith(piece[start:]):
                    piece = piece[:start] + REDACTED
                    break
                start = piece.find(head, start + 1)
        return piece

    def _hide_tail_of_secret(self, piece: str) -> str:
        """`piece` with a secret's last part at its start hidden (the longest such part)."""
        for secret in self.secrets:
            tail = secret[-MIN_FRAGMENT_CHARS:]
            longest = 0
            found = piece.find(tail, 0, len(secret))
            while found != -1:
                end = found + MIN_FRAGMENT_CHARS
                if secret.endswith(piece[:end]):
                    longest = end
                found = piece.find(tail, found + 1, len(secret))
            if longest:
                piece = REDACTED + piece[longest:]
        return piece


def report_redactor(config: pytest.Config) -> Redactor:
    """The session's redactor for reports: the secrets the environment and the credentials
    file hold when the first report is made (one per config, built once)."""
    redactor = config.stash.get(_REDACTOR_KEY, None)
    if redactor is None:
        redactor = config.stash[_REDACTOR_KEY] = ReportRedactor(session_redactor().secrets)
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
