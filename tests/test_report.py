"""Tests for the Markdown and HTML experiment reports (built from run records, as sessions do)."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest
from report_factory import make_record

from pytest_scylla.aggregate import ExperimentResult, aggregate_experiment
from pytest_scylla.records import AgentRecord, RunRecord, ScoreRecord
from pytest_scylla.report.build import report_input
from pytest_scylla.report.html import render_html
from pytest_scylla.report.markdown import escape_markdown, render_markdown
from pytest_scylla.report.model import ReportInput
from pytest_scylla.report.tables import fmt_cost_of_pass, fmt_interval
from pytest_scylla.report.terminal import tier_table as terminal_tier_table
from pytest_scylla.stats import Interval, wilson_interval

HOSTILE_NAME = "<script>alert(1)</script> | *bold*"


def _records() -> list[RunRecord]:
    records = []
    # T0: two sub-tests, 3 of 6 pass; judge b fails once.
    for run, score in enumerate([0.9, 0.8, 0.2], start=1):
        records.append(make_record("T0", "00-empty", run, score))
    for run, score in enumerate([0.7, 0.3, 0.1], start=1):
        records.append(make_record("T0", "01-x", run, score, failed_judge=run == 1))
    # T1: nothing passes -> infinite Cost-of-Pass; one timeout (graded) and one error.
    for run, score in enumerate([0.1, 0.2, 0.3, 0.4, 0.5, 0.55], start=1):
        records.append(make_record("T1", "01", run, score, timed_out=run == 1))
    records.append(make_record("T1", "01", 7, None))
    # T2: two runs only, by an agent that reports no cost or tokens.
    for run, score in enumerate([0.95, 0.99], start=1):
        records.append(make_record("T2", "02", run, score, cost=None, tokens=False))
    # T3: every run errored.
    records += [make_record("T3", "03", run, None) for run in (1, 2)]
    return records


@pytest.fixture(scope="module")
def result() -> ExperimentResult:
    return aggregate_experiment("test-001", _records(), [])


@pytest.fixture
def report(result: ExperimentResult) -> ReportInput:
    return report_input(result, HOSTILE_NAME)


def _row(text: str, start: str) -> str:
    return next(line for line in text.splitlines() if line.startswith(start))


# --- Markdown -------------------------------------------------------------------------------


def test_markdown_names_what_was_measured_and_how(report: ReportInput) -> None:
    text = render_markdown(report)
    assert text.startswith("# Experiment report: ")
    assert "- Agent: claude-code (model: claude-sonnet-4-6)" in text
    assert "- Judged by: llm; judge models: judge-a, judge-b" in text
    assert "- Pass threshold: 0.6 (rubric)" in text
    assert "- Versions: pytest-scylla 0.1.0; agent CLI 2.1.0" in text
    assert "- Statistics: seed 0, 10,000 bootstrap and permutation resamples" in text
    assert "- Runs: 17 (5 passed, 9 failed, 3 errors; 1 of the judged runs timed out)" in text
    # No clock in a report: regenerating must give the same bytes.
    assert "Generated" not in text and "2026-" not in text


def test_markdown_tier_rows(report: ReportInput, result: ExperimentResult) -> None:
    text = render_markdown(report)
    t0 = result.tiers["T0"]
    interval = t0.pass_rate_interval
    assert interval is not None and interval.unit == "subtest"  # two sub-tests: clusters
    row = _row(text, "| T0 Prompts |")
    assert row.startswith("| T0 Prompts | 6 | 3 / 3 / 0 / 0 | 6 | 50.0% [")
    assert "| sub-tests (2) |" in row
    # Sub-test 00 passes 2 of 3: pass@3 = 1, pass^3 = 0; tier: 3 of 6, pass^3 = 1/20.
    assert "| 1: 50.0%, 3: 95.0%, 5: 100.0% | 1: 50.0%, 3: 5.0%, 5: 0.0% |" in row
    assert "| $0.500 [" in row  # Cost-of-Pass 0.25 / 0.5, three significant digits
    t1 = _row(text, "| T1 Skills |")
    low, high = wilson_interval(0, 6)
    # One sub-test: the interval is over its runs (Wilson), and says so.
    assert f"| 0.0% [{low * 100:.1f}%, {high * 100:.1f}%] |" in t1
    assert "| runs (1 sub-test) |" in t1
    # The sensitivity column counts the error as a failure: 0 of 7.
    low, high = wilson_interval(0, 7)
    assert f"| 0.0% [{low * 100:.1f}%, {high * 100:.1f}%] |" in t1
    assert "∞ (no passes)" in t1


def test_markdown_unknown_cost_is_not_zero(report: ReportInput) -> None:
    text = render_markdown(report)
    t2 = _row(text, "| T2 Tooling |")
    assert "$0.0000" not in t2 and "| n/a | n/a | n/a | 02 |" in t2
    assert "- Cost: agent $3.7500 (2 runs reported no cost), judges $0.2700" in text
    assert "| T2 | 0 | n/a | n/a | n/a | n/a |" in text  # tokens by kind
    assert "| T0 | 6 of 6 | 100 | 50 | 0 | 0 |" in text


def test_markdown_tier_whose_runs_all_errored(report: ReportInput) -> None:
    row = _row(render_markdown(report), "| T3 Delegation |")
    # Not "0 | n/a [0.0%, 100.0%]": no rate at all, and the errors as failures.
    _, high = wilson_interval(0, 2)
    assert row.startswith(
        f"| T3 Delegation | 2 | 0 / 0 / 0 / 2 | 2 | n/a | 0.0% [0.0%, {high * 100:.1f}%]"
    )
    assert "[0.0%, 100.0%]" not in row


def test_markdown_small_samples_carry_a_note(report: ReportInput) -> None:
    text = render_markdown(report)
    t2 = _row(text, "| T2 Tooling |")
    assert "100.0% [34.2%, 100.0%] †" in t2
    assert "† fewer than 5 per group" in text
    # The sub-test label is not doubled ("00-empty 00-empty").
    assert _row(text, "| 00-empty (best) |").startswith("| 00-empty (best) | 3 |")


def test_degenerate_intervals_are_not_shown_as_intervals() -> None:
    constant = Interval(estimate=1.0, low=1.0, high=1.0, confidence=0.95, method="bootstrap")
    assert fmt_interval(constant) == "1.000 (no interval: every resample equal)"
    unbounded = Interval(
        estimate=0.5, low=float("-inf"), high=float("inf"), confidence=0.95, method="Moses"
    )
    assert fmt_interval(unbounded) == "0.500 (no interval: too few runs)"
    records = [make_record("T0", "00", run, 1.0) for run in (1, 2, 3)]
    text = render_markdown(report_input(aggregate_experiment("x", records, [])))
    assert "1.000 [1.000, 1.000]" not in text
    assert "1.000 (no interval: every resample equal)" in text


def test_markdown_comparison_table(report: ReportInput, result: ExperimentResult) -> None:
    text = render_markdown(report)
    assert "## Tier comparisons" in text
    assert "Kruskal-Wallis over 3 tiers with runs (14 runs): H = " in text
    tests = result.tier_tests
    assert tests is not None and tests.empty_groups == ["T3"]
    assert "Tiers without judged runs, skipped: T3." in text
    row = _row(text, "| T1 vs T0 (previous and baseline) |")
    assert row.startswith("| T1 vs T0 (previous and baseline) | 6 vs 6 | 22.5 | ")
    assert "(exact)" in row
    few = _row(text, "| T2 vs T1 (previous) |")
    assert "too few runs to mean anything (6 vs 2" in few and "| no |" in few
    assert _row(text, "| T2 vs T0 (baseline) |")
    # Effects read later minus earlier: T2 passes everything, T1 nothing.
    effect = next(e for e in result.effects if (e.group_a, e.group_b) == ("T1", "T2"))
    assert effect.pass_rate_difference.estimate == pytest.approx(1.0)
    assert "+1.000 [+0.235, +1.000] †" in few
    assert "Runs per tier for the observed δ" in text and "Power" not in text


def test_markdown_criteria_and_judges(report: ReportInput) -> None:
    text = render_markdown(report)
    assert "| category functional | 50.0% (n=6) | 34.2% (n=6) | 97.0% (n=2) | n/a |" in text
    assert "| item Q1 (quality) |" in text
    assert "| judge-b | 14 | 1 | " in text  # one failure shown, not hidden
    assert "Krippendorff's alpha (interval metric) on item scores: 0.9" in text
    assert "T0: judges' score range per run (max - min of their scores) mean 0.050" in text


def test_markdown_escapes_names(report: ReportInput) -> None:
    text = render_markdown(report)
    assert "<script>" not in text
    assert "&lt;script&gt;" in text
    assert escape_markdown("a|b\nc") == "a\\|b c"
    header = _row(text, "| Tier |")
    columns = header.count(" | ")
    for line in text.splitlines():
        if line.startswith("| T") and ("Prompts" in line or "Skills" in line):
            assert line.replace("\\|", "").count(" | ") == columns


def test_markdown_without_comparisons() -> None:
    records = [make_record("T0", "00", 1, 0.9)]
    text = render_markdown(report_input(aggregate_experiment("x", records, [])))
    assert "# Experiment report: x" in text
    assert "No comparisons" in text


# --- HTML -----------------------------------------------------------------------------------

_VOID = {"meta", "br", "hr", "img", "input", "link"}


class _StrictParser(HTMLParser):
    """Records tags and checks that every opened element is closed in order."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.tags: list[str] = []
        self.attributes: list[tuple[str, str | None]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attributes += attrs
        if tag not in _VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attributes += attrs

    def handle_endtag(self, tag: str) -> None:
        assert self.stack and self.stack[-1] == tag, f"unbalanced </{tag}> in {self.stack}"
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def _parse(document: str) -> _StrictParser:
    parser = _StrictParser()
    parser.feed(document)
    parser.close()
    assert parser.stack == []
    return parser


def test_html_parses_and_has_plots_and_tables(report: ReportInput) -> None:
    document = render_html(report)
    assert document.startswith("<!DOCTYPE html>")
    parsed = _parse(document)
    # pass rate, scores, cost vs score, Cost-of-Pass, tokens, criteria heatmap, judges
    assert parsed.tags.count("svg") == 7
    assert "rect" in parsed.tags and "circle" in parsed.tags and "polyline" in parsed.tags
    # tiers, one sub-test table per tier, comparisons, criteria, judges, tokens
    assert parsed.tags.count("table") == 1 + 4 + 1 + 1 + 1 + 1
    text = "".join(parsed.text)
    assert "Judged by: llm; judge models: judge-a, judge-b" in text
    assert "∞ (no passes)" in text
    assert "T2 vs T1 (previous)" in text and "too few runs to mean anything" in text
    for title in ("Pass rate per tier", "Pareto frontier", "Cost-of-Pass per tier", "Criteria"):
        assert title in text
    assert "Krippendorff's alpha 0.9" in text


def test_html_is_self_contained(report: ReportInput) -> None:
    document = render_html(report)
    parsed = _parse(document)
    assert "script" not in parsed.tags and "link" not in parsed.tags
    assert "img" not in parsed.tags and "iframe" not in parsed.tags
    assert not [name for name, _ in parsed.attributes if name in {"src", "href"}]
    # The only URL is the SVG namespace, which is an identifier, never fetched.
    assert document.count("http") == document.count('xmlns="http://www.w3.org/2000/svg"')


def test_html_escapes_text(report: ReportInput) -> None:
    document = render_html(report)
    assert "<script>" not in document
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in document
    assert HOSTILE_NAME in "".join(_parse(document).text)


def test_reports_are_deterministic() -> None:
    # Two aggregations of the same records (bootstraps seeded) render the same bytes.
    first = report_input(aggregate_experiment("x", _records(), []))
    second = report_input(aggregate_experiment("x", _records(), []))
    assert render_html(first) == render_html(second)
    assert render_markdown(first) == render_markdown(second)


def test_html_tier_without_runs(report: ReportInput) -> None:
    parsed = _parse(render_html(report))
    text = "".join(parsed.text)
    assert "no runs" in text and "cost n/a" in text and "tokens n/a" in text


def test_cost_of_pass_formatting(result: ExperimentResult) -> None:
    assert fmt_cost_of_pass(result.tiers["T1"].cost) == "∞ (no passes)"
    assert fmt_cost_of_pass(result.tiers["T2"].cost) == "n/a"  # the agent reports no cost
    assert fmt_cost_of_pass(None) == "n/a"
    assert fmt_cost_of_pass(result.tiers["T0"].cost).startswith("$0.500 [")


def test_report_input_round_trips_through_json(report: ReportInput) -> None:
    again = ReportInput.model_validate_json(report.model_dump_json())
    assert render_markdown(again) == render_markdown(report)


# --- terminal summary -----------------------------------------------------------------------


def _run(tier: str, run: int, outcome: str, score: float | None, cost: float | None) -> RunRecord:
    result = None
    if score is not None:
        result = ScoreRecord(
            score=score,
            grade="A",
            passed=outcome == "passed",
            pass_threshold=0.6,
            category_scores={},
            items=[],
        )
    return RunRecord(
        experiment_id="exp",
        tier=tier,
        subtest="00",
        run=run,
        node_id=f"test.yaml::{tier}::00[run-{run:02d}]",
        agent_name="oracle",
        judge_mode="commands-only",
        outcome=outcome,  # type: ignore[arg-type]
        result=result,
        agent=AgentRecord(agent="oracle", cost_usd=cost),
        started_at="2026-01-20T06:13:07+00:00",
        finished_at="2026-01-20T06:13:08+00:00",
    )


def test_terminal_tier_table_cells() -> None:
    records = [
        _run("T0", 1, "passed", 0.9, 0.5),
        _run("T0", 2, "failed", 0.2, 0.25),
        _run("T1", 1, "failed", 0.1, 0.125),
        _run("T2", 1, "error", None, 0.0),  # no judged run: rates and costs are n/a
        _run("T3", 1, "passed", 0.9, None),  # the agent reports no cost: n/a, not $0
    ]
    lines = terminal_tier_table(aggregate_experiment("exp", records, []))
    cells = {line.split()[0]: " ".join(line.split()[1:]) for line in lines[2:]}
    # runs pass fail timeout error | pass rate, CI, mean, median | agent $, judge $, cost/pass,
    # best
    low, high = wilson_interval(1, 2)
    assert (
        cells["T0"] == f"2 1 1 0 0 0.50 {low:.2f}-{high:.2f} 0.550 0.550 $0.7500 $0.0000 $0.7500 00"
    )
    low, high = wilson_interval(0, 1)
    assert cells["T1"] == f"1 0 1 0 0 0.00 {low:.2f}-{high:.2f} 0.100 0.100 $0.1250 $0.0000 inf 00"
    assert cells["T2"] == "1 0 0 0 1 n/a n/a n/a n/a $0.0000 $0.0000 n/a -"
    low, high = wilson_interval(1, 1)
    assert cells["T3"] == f"1 1 0 0 0 1.00 {low:.2f}-{high:.2f} 0.900 0.900 n/a $0.0000 n/a 00"


def test_counts_attempts_and_records_not_counted_in_both_reports() -> None:
    records = [make_record("T0", "00", 1, 0.9, earlier_attempt_cost=0.5)]
    records.append(make_record("T0", "00", 2, 0.2, timed_out=True))
    records.append(make_record("T0", "00", 3, None))
    note = f"results/x/T0/00/run-09/run_result.json: {HOSTILE_NAME}; not counted"
    result = aggregate_experiment("x", records, [note])
    markdown = render_markdown(report_input(result))
    assert "| T0 Prompts | 3 | 1 / 1 / 1 / 1 | 4 (1 repeated) |" in markdown
    assert "1 earlier attempt(s) kept, their spend included in costs" in markdown
    assert "- Cost: agent $1.2500, judges $0.0400" in markdown  # 0.5 + 3 x 0.25
    assert "## Not counted" in markdown and "&lt;script&gt;" in markdown
    html = render_html(report_input(result))
    assert '<td class="num">1 / 1 / 1 / 1</td>' in html
    assert "<h2>Not counted</h2>" in html and "<script>alert" not in html


def test_aggregate_round_trips_through_result_json(result: ExperimentResult) -> None:
    # A later session may rebuild reports from result.json alone: infinite Cost-of-Pass and
    # unbounded intervals must come back as they were, and render the same bytes.
    text = result.model_dump_json(indent=2)
    again = ExperimentResult.model_validate_json(text)
    assert again == result and again.model_dump_json(indent=2) == text
    assert render_html(report_input(again)) == render_html(report_input(result))


def test_pass_rate_labels_stay_clear_of_bars_and_whiskers() -> None:
    """A rate near 100% has its interval's top at the plot's top: its label, once drawn just
    above the whisker, sat on it. Every label is now under the tier's name, below the axis."""
    import re

    from pytest_scylla.report.plots import HEIGHT, RATE_LABEL_Y, pass_rate_chart

    records = [make_record("T0", "00", run, 0.9) for run in range(1, 4)]  # all pass
    records += [make_record("T1", "00", run, score) for run, score in enumerate((0.9, 0.1), 1)]
    chart = pass_rate_chart(aggregate_experiment("exp", records, []))
    labels = re.findall(r'<text x="[\d.]+" y="([\d.]+)"[^>]*>(\d+% ?†?)</text>', chart)
    assert [label for _, label in labels] == ["100% †", "50% †"]
    axis_y = HEIGHT - 44  # plots._BOTTOM: the x axis
    assert all(axis_y < float(y) == RATE_LABEL_Y < HEIGHT for y, _ in labels)
