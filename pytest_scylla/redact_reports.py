"""What pytest writes about a run item, redacted before anyone reads it.

A test report reaches the terminal (tracebacks with every frame's arguments, `-l` locals,
captured output), `--junitxml`, `--json-report` (which keeps its own copy of the captured
streams and log records on the item) and, through xdist, the controller. The plugin's
`pytest_runtest_makereport` wrapper runs outermost and hands this module each report of a
run item, so all of them see redacted text only, once, from one place.

The traceback keeps its structure (the terminal's layout and colours, JUnit's message,
the JSON report's crash entry): the report goes through pytest's own serialization, the
one xdist uses, every string in it is redacted, and it is built back.

That round trip costs milliseconds a report, and a resume of 10,000 finished runs makes
30,000 reports whose strings hold nothing to hide (a node id, keywords, the record read
from disk). `might_redact` tells, cheaply and conservatively, whether the redactor could
change a text at all; a report in which nothing could change is handed on as it is.
"""

from __future__ import annotations

import json
import os
import weakref
from typing import Any

import pytest

from pytest_scylla.redact import (
    MARKED_SECRETS,
    REDACTED,
    SECRET_SHAPES,
    Redactor,
    session_redactor,
)

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
    if not _report_might_redact(redactor, item, report, json_attributes):
        return report  # the slow path below would hand back the same strings
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


# ---- the fast path: could the redactor change anything at all? ------------------------------
#
# Redactor.__call__ changes a text only where (1) it holds a known secret, (2) a secret shape
# matches, (3) a marked secret's word occurs (its pattern runs only then), or, for the
# ReportRedactor, (4) it holds "..." and the first or last MIN_FRAGMENT_CHARS of a secret.
# `might_redact` answers True whenever one of those holds, so a False is a proof that the
# redactor hands the text back unchanged. Keep it in step with Redactor.__call__: the test
# tests/test_resume_fast_path.py checks it against the redactor on every shape and marker.

# JSON escapes under which a character can hide from a plain substring search.
_HIDING_ESCAPES = ("\\u", "\\/")


# The markers' words, flat: `any(map(text.__contains__, words))` runs in C.
_LOWER_WORDS = tuple(
    word for marked in MARKED_SECRETS if not marked.exact_words for word in marked.words
)
_EXACT_WORDS = tuple(
    word for marked in MARKED_SECRETS if marked.exact_words for word in marked.words
)
# The words again as a JSON document spells them inside a string (a quote as \\").
_ESCAPED_LOWER_WORDS = tuple(
    json.dumps(word)[1:-1] for word in _LOWER_WORDS if json.dumps(word)[1:-1] != word
)
_ESCAPED_EXACT_WORDS = tuple(
    json.dumps(word)[1:-1] for word in _EXACT_WORDS if json.dumps(word)[1:-1] != word
)

Stems = tuple[tuple[str, tuple[str, ...]], ...]


def _by_stem(words: tuple[str, ...]) -> Stems:
    """Words grouped by what is left without their closing quote: a text without the stem
    holds none of them, and most texts hold few stems (a record, 10 kB, has "token")."""
    groups: dict[str, list[str]] = {}
    for word in words:
        groups.setdefault(word.rstrip("\"'\\"), []).append(word)
    return tuple((stem, tuple(group)) for stem, group in groups.items())


_LOWER_STEMS = _by_stem(_LOWER_WORDS)
_JSON_LOWER_STEMS = _by_stem(_LOWER_WORDS + _ESCAPED_LOWER_WORDS)


def might_redact(redactor: Redactor, text: str) -> bool:
    """Whether `redactor(text)` could differ from `text` (False: it certainly does not)."""
    return _might_change(redactor, text, _EXACT_WORDS, _LOWER_STEMS)


def json_might_redact(redactor: Redactor, text: str) -> bool:
    """Whether redacting the JSON document `text` value by value (keys included, as
    `_redact_json_text` does) could change any string in it.

    A string's characters appear in the document as they are, except those JSON escapes:
    a quote becomes \\", and any character may be written \\uXXXX (or / as \\/). So a
    document with \\u or \\/ escapes, or a secret that JSON would escape, always counts as
    "might"; the markers' words are also looked for with their quotes escaped.
    """
    if any(escape in text for escape in _HIDING_ESCAPES):
        return True
    if any(json.dumps(secret)[1:-1] != secret for secret in redactor.secrets):
        return True
    return _might_change(redactor, text, _EXACT_WORDS + _ESCAPED_EXACT_WORDS, _JSON_LOWER_STEMS)


def may_hold_secret(redactor: Redactor, text: str) -> bool:
    """Whether the JSON document `text` may hold a secret the redactor knows or a secret's
    shape (False: it holds neither).

    For a record file passed on as it is, read by the process that keeps it (no xdist): its
    writer redacted it with the same markers, so what is new since can only be a secret this
    session knows and that one did not. A secret JSON would escape counts as "may".
    """
    if any(json.dumps(secret)[1:-1] != secret for secret in redactor.secrets):
        return True
    if any(map(text.__contains__, redactor.secrets)):
        return True
    return any(shape.search(text) for shape in SECRET_SHAPES)


def _might_change(
    redactor: Redactor, text: str, exact_words: tuple[str, ...], lower_stems: Stems
) -> bool:
    if any(map(text.__contains__, redactor.secrets)):
        return True
    if any(shape.search(text) for shape in SECRET_SHAPES):
        return True
    if any(map(text.__contains__, exact_words)):
        return True
    lowered = text.lower()
    for stem, words in lower_stems:
        if stem in lowered and any(map(lowered.__contains__, words)):
            return True
    if isinstance(redactor, ReportRedactor) and ELLIPSIS in text:
        for secret in redactor.secrets:
            if secret[:MIN_FRAGMENT_CHARS] in text or secret[-MIN_FRAGMENT_CHARS:] in text:
                return True
    return False


_PLAIN_TYPES = (int, float, bool, type(None))


def _strings(value: Any) -> list[str] | None:
    """Every string the report serialization would hand the redactor in `value`; None when
    `value` holds something only the full serialization can turn into strings."""
    found: list[str] = []
    pending = [value]
    while pending:
        current = pending.pop()
        kind = type(current)
        if kind is str:
            found.append(current)
        elif kind in _PLAIN_TYPES:
            continue
        elif kind is dict:
            pending.extend(current.keys())
            pending.extend(current.values())
        elif kind is list or kind is tuple:
            pending.extend(current)
        elif isinstance(current, str):
            found.append(current)
        elif isinstance(current, dict):
            pending.extend(current.keys())
            pending.extend(current.values())
        elif isinstance(current, list | tuple):
            pending.extend(current)
        elif isinstance(current, os.PathLike):
            found.append(os.fspath(current))
        elif hasattr(current, "toterminal"):  # a traceback: serialized into many strings
            return None
        # Anything else (numbers, None, booleans, objects) the redactor leaves as it is.
    return found


# Strings found to hold nothing the redactor changes, per redactor and its list of secrets
# (Redactor.add makes a new list). The reports of thousands of runs repeat most of their
# strings (property names, outcomes, stage names): each is searched once.
_UNCHANGED: weakref.WeakKeyDictionary[Redactor, tuple[list[str], set[str]]] = (
    weakref.WeakKeyDictionary()
)
_UNCHANGED_MAX_STRINGS = 100_000
_UNCHANGED_MAX_CHARS = 200  # long texts rarely repeat: not worth keeping


def _unchanged_strings(redactor: Redactor) -> set[str]:
    known = _UNCHANGED.get(redactor)
    if known is None or known[0] is not redactor.secrets:
        known = _UNCHANGED[redactor] = (redactor.secrets, set())
    return known[1]


def _value_might_redact(redactor: Redactor, value: Any) -> bool:
    strings = _strings(value)
    if strings is None:
        return True
    unchanged = _unchanged_strings(redactor)
    unknown = [string for string in strings if string not in unchanged]
    if not unknown:
        return False
    # One search over all of them: a match inside one string is a match in the joined text,
    # so a joined text the redactor leaves alone says the same of each string (the
    # redactor takes the strings one by one).
    if might_redact(redactor, "\n".join(unknown)):
        return True
    if len(unchanged) < _UNCHANGED_MAX_STRINGS:
        unchanged.update(string for string in unknown if len(string) <= _UNCHANGED_MAX_CHARS)
    return False


# What every report of an item repeats: checked once per item, while it stays the same.
_ITEM_FIELDS = ("nodeid", "location", "keywords")
_ITEM_FIELDS_CHECKED: pytest.StashKey[tuple[tuple[Any, ...], bool]] = pytest.StashKey()


def _report_might_redact(
    redactor: Redactor,
    item: pytest.Item,
    report: pytest.TestReport,
    json_attributes: tuple[str, ...],
) -> bool:
    """Whether redact_report could change anything in the report or on the item."""
    for name in json_attributes:
        document = getattr(report, name, None)
        if isinstance(document, str) and json_might_redact(redactor, document):
            return True
    fields = report.__dict__
    repeated = tuple(fields.get(name) for name in _ITEM_FIELDS)
    checked = item.stash.get(_ITEM_FIELDS_CHECKED, None)
    if checked is None or checked[0] != repeated:
        checked = (repeated, _value_might_redact(redactor, repeated))
        item.stash[_ITEM_FIELDS_CHECKED] = checked
    if checked[1]:
        return True
    rest = [
        value
        for name, value in fields.items()
        if name not in _ITEM_FIELDS and name not in json_attributes
    ]
    return _value_might_redact(
        redactor, (rest, item._report_sections, getattr(item, JSON_REPORT_EXTRA, None))
    )
