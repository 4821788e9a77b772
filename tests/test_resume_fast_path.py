"""A plain resume of finished runs takes the cheap paths (issue 11), and each cheap path is
exact: the report redactor's "nothing to redact" test never misses what the redactor would
change, a run reused from disk travels as its file's bytes, and aggregates are rebuilt
exactly when a record file changed. Speed is measured in benchmarks/bench_status.py."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from experiment_factory import write_experiment

from pytest_scylla.aggregate_inputs import (
    AGGREGATE_INPUTS_FILE,
    AggregateInputs,
    builder_version,
    current_inputs,
    records_fingerprint,
    save_inputs,
    written_stamps,
)
from pytest_scylla.records import RUN_RECORD_FILE, atomic_write_text
from pytest_scylla.redact import REDACTED
from pytest_scylla.redact_reports import (
    ReportRedactor,
    _value_might_redact,
    json_might_redact,
    might_redact,
)

OFFLINE = (
    "--judge-model",
    "none",
    "-p",
    "no:cacheprovider",
    "--agent",
    "oracle",
    "--max-subtests",
    "1",
)
SECRET = "pw-Zq8Xv3Lk9Tr2Hy7Nm4"  # a known secret of the redactor below
# Texts the redactor changes: every marker, a shape, a known secret, and pieces of it
# beside the "..." pytest leaves where it cut a long repr.
CHANGED = [
    "x-api-key: abcdef123456",
    "X-Api-Key:abcdef123456",
    "Authorization: Bearer eyJhbGciOi.abc.def",
    "-H 'Authorization: abcdef123456'",
    '{"authorization": "Bearer abcdefgh12345"}',
    "got 401 for bearer abcdefgh12345678",
    "export GITHUB_TOKEN=ghp_abc123 && run",
    'env MY_SECRET="two words" x',
    "DB_PASSWORD='pa ss' AWS_SECRET_ACCESS_KEY=xyz",
    "{'ANTHROPIC_API_KEY': 'zzzzzzzzz', 'PATH': '/bin'}",
    '{"accessToken": "tok-123456", "expiresAt": 123}',
    '{"x-api-key": "abc\\"def", "n": 1}',
    '"FOO_TOKEN=\\"abc def\\" run"',
    "key sk-ant-api03-abcdefghijkl in text",
    f"the password is {SECRET}.",
    f"cut here: aaaa{SECRET[:9]}...",
    f"...{SECRET[-7:]} and more",
]
# Texts it leaves alone, and so must the fast path (or a resume gains nothing).
UNCHANGED = [
    "experiments/test-001/test.yaml::T0::00-empty[run-03]",
    "score 0.500 (grade C) below pass threshold 0.60",
    "Do both... then stop",
]
# Texts it leaves alone though a marker's word occurs: the fast path may say "might" (the
# full redaction then changes nothing), never the other way round.
WORD_ONLY = [
    '{"max_tokens": 8192, "input_tokens": 12, "cache_key": "0f3a9c"}',
    "the bearer of bad news",
]


@pytest.fixture
def redactor() -> ReportRedactor:
    return ReportRedactor([SECRET])


@pytest.mark.parametrize("text", CHANGED + UNCHANGED + WORD_ONLY)
def test_might_redact_says_yes_wherever_the_redactor_changes_text(
    redactor: ReportRedactor, text: str
) -> None:
    changed = redactor(text) != text
    assert changed == (text in CHANGED)
    if changed:
        assert might_redact(redactor, text)
    elif text in UNCHANGED:
        assert not might_redact(redactor, text)


def test_strings_found_unchanged_are_searched_again_once_a_secret_is_added() -> None:
    """Report strings the redactor left alone are not searched again, until it learns a
    secret: a value reported before the secret was known must not stay "unchanged"."""
    redactor = ReportRedactor([])
    value = [("scylla_note", "printed zx-late-Secret-91 on the way"), "passed"]
    assert not _value_might_redact(redactor, value)
    assert not _value_might_redact(redactor, value)  # answered from the strings seen
    redactor.add("zx-late-Secret-91")
    assert _value_might_redact(redactor, value)
    assert redactor(value[0][1]) == f"printed {REDACTED} on the way"
    # A redactor of its own: what another one found unchanged says nothing about it.
    assert _value_might_redact(ReportRedactor(["zx-late-Secret-91"]), value)


@pytest.mark.parametrize("text", CHANGED)
@pytest.mark.parametrize("ensure_ascii", [True, False])
def test_json_might_redact_finds_strings_however_json_spells_them(
    redactor: ReportRedactor, text: str, ensure_ascii: bool
) -> None:
    """A value's quotes are escaped in the document (\\"token\\": \\"x\\" matches no marker as
    text); a key counts too; a \\u escape can hide any character."""
    for document in ({"value": text}, {text: 1}, {"nested": [{"deep": text}]}):
        dumped = json.dumps(document, ensure_ascii=ensure_ascii)
        assert redactor.tree(document) != document
        assert json_might_redact(redactor, dumped)
    hidden = json.dumps({"value": text.replace("k", "\\u006b")}).replace("\\\\u006b", "\\u006b")
    assert json_might_redact(redactor, hidden)


def test_json_might_redact_passes_an_ordinary_record(redactor: ReportRedactor) -> None:
    document = {"outcome": "passed", "notes": UNCHANGED, "tokens": {"input_tokens": 3}}
    assert redactor.tree(document) == document
    assert not json_might_redact(redactor, json.dumps(document, indent=2))
    # A secret JSON would escape cannot be searched for as text: always the full path.
    assert json_might_redact(ReportRedactor(['quote"secret']), json.dumps(document))


def stamps(root: Path) -> dict[str, tuple[int, int]]:
    """(mtime_ns, inode) of every file under root: what a resume must leave untouched."""
    found = {}
    for path in sorted(root.rglob("*")):
        if path.is_file() and path.name != "manifest.json" and not path.name.startswith(".scylla"):
            stat = path.stat()
            found[str(path.relative_to(root))] = (stat.st_mtime_ns, stat.st_ino)
    return found


def test_a_plain_resume_rewrites_nothing_and_a_changed_record_reaggregates(
    pytester: pytest.Pytester,
) -> None:
    experiment = write_experiment(pytester.path, "exp-resume")
    results = pytester.path / "results"
    args = (str(experiment), "--runs", "2", "--results-dir", str(results), *OFFLINE)
    pytester.runpytest(*args).assert_outcomes(passed=2)
    folder = results / "exp-resume"
    assert (folder / AGGREGATE_INPUTS_FILE).is_file()
    before = stamps(results)

    again = pytester.runpytest(*args)
    again.assert_outcomes(passed=2)
    # The tier table comes from the result.json on disk, as the first session printed it.
    again.stdout.fnmatch_lines(
        ["exp-resume  agent: oracle*", "  T0 * 2 * 2 * 0 *", "runs: 0 executed, 2 from disk*"]
    )
    assert stamps(results) == before  # records, aggregates and reports: not one byte written

    # A record changed on disk (a new cost, as a hand edit or a copy would bring) is read
    # again by the next session, which aggregates again instead of trusting result.json.
    [record_file, *_] = sorted(folder.rglob(RUN_RECORD_FILE))
    record = json.loads(record_file.read_text())
    record["agent"]["cost_usd"] = 1.25
    atomic_write_text(record_file, json.dumps(record, indent=2) + "\n")
    third = pytester.runpytest(*args)
    third.assert_outcomes(passed=2)
    aggregate = json.loads((folder / "result.json").read_text())
    assert aggregate["agent_cost_usd"] == pytest.approx(1.25)
    assert stamps(results) != before
    fingerprint = records_fingerprint(folder)
    stored = json.loads((folder / AGGREGATE_INPUTS_FILE).read_text())
    assert (stored["records"], stored["record_count"]) == fingerprint
    assert stored["record_count"] == 2


def test_aggregates_are_not_current_after_any_record_or_report_change(tmp_path: Path) -> None:
    """records_fingerprint and current_inputs on their own: a rewrite with the same bytes
    (a new inode), a touch, a new or removed record, or a touched report all count."""
    folder = tmp_path / "exp"
    record = folder / "T0" / "00-empty" / "run-01" / RUN_RECORD_FILE
    atomic_write_text(record, "{}\n")
    first = records_fingerprint(folder)
    assert first == records_fingerprint(folder) and first[1] == 1
    atomic_write_text(record, "{}\n")
    second = records_fingerprint(folder)
    assert second != first
    os.utime(record, ns=(1, 1))
    assert records_fingerprint(folder) != second
    other = folder / "T0" / "00-empty" / "run-02" / RUN_RECORD_FILE
    atomic_write_text(other, "{}\n")
    assert records_fingerprint(folder)[1] == 2
    other.unlink()
    assert records_fingerprint(folder)[1] == 1
    # Nothing stored yet: never current.
    assert current_inputs(folder, records_fingerprint(folder), "1", "name") is None
    atomic_write_text(folder / "result.json", "{}\n")
    atomic_write_text(folder / "report.md", "# report\n")
    fingerprint = records_fingerprint(folder)
    inputs = AggregateInputs(
        plugin_version=builder_version(),
        experiment_name="name",
        records=fingerprint[0],
        record_count=fingerprint[1],
        written=written_stamps(folder, ["report.md"]),
        cli_versions=[],
        fixture_sha256=[],
    )
    save_inputs(folder, inputs)
    assert current_inputs(folder, fingerprint, builder_version(), "name") == inputs
    # Another build of the plugin, another experiment name, or a touched report: rebuilt.
    assert current_inputs(folder, fingerprint, "0.0.0+other", "name") is None
    assert current_inputs(folder, fingerprint, builder_version(), "renamed") is None
    os.utime(folder / "report.md", ns=(5, 5))
    assert current_inputs(folder, fingerprint, builder_version(), "name") is None


def test_a_record_holding_a_secret_known_only_now_is_redacted_on_resume(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fast path hands a record on as its file's bytes only when no string in it could
    be redacted: a value that became a secret since (a new key in the environment) sends
    the record through the full redaction, and the controller writes the redacted record."""
    experiment = write_experiment(pytester.path, "exp-new-secret")
    results = pytester.path / "results"
    args = (str(experiment), "--runs", "1", "--results-dir", str(results), *OFFLINE)
    pytester.runpytest(*args).assert_outcomes(passed=1)
    [record_file] = sorted((results / "exp-new-secret").rglob(RUN_RECORD_FILE))
    record = json.loads(record_file.read_text())
    secret = "late-secret-Qw7Er4Ty1Ui8"
    record["agent"]["result_text"] = f"printed {secret} on the way"
    atomic_write_text(record_file, json.dumps(record, indent=2) + "\n")
    monkeypatch.setenv("SCYLLA_TEST_LATE_TOKEN", secret)
    pytester.runpytest(*args).assert_outcomes(passed=1)
    text = record_file.read_text()
    assert secret not in text and REDACTED in text
    assert not any(
        secret in path.read_text(errors="replace") for path in results.rglob("*") if path.is_file()
    )
