"""Tests for the Markdown and HTML experiment reports."""

from __future__ import annotations

from datetime import UTC, datetime
from html.parser import HTMLParser

import pytest

from pytest_scylla.aggregate import aggregate_experiment
from pytest_scylla.records import AgentRecord, RunRecord, ScoreRecord
from pytest_scylla.report.html import render_html
from pytest_scylla.report.markdown import escape_markdown, render_markdown
from pytest_scylla.report.model import ReportInput, RunCounts, SubtestReport, TierReport
from pytest_scylla.report.tables import fmt_cost_of_pass
from pytest_scylla.report.terminal import tier_table as terminal_tier_table
from pytest_scylla.stats import compare_groups, summarize, wilson_interval

HOSTILE_NAME = "<script>alert(1)</script> | *bold*"


def _summary(scores: list[float], threshold: float = 0.6, cost: float = 0.25):
    return summarize(
        scores=scores,
        passed=[s >= threshold for s in scores],
        costs=[cost] * len(scores),
        durations=[100.0] * len(scores),
        tokens=[12_000] * len(scores),
    )


def _tier(tier_id: str, subtests: dict[str, list[float]], best: str | None) -> TierReport:
    scores = [s for values in subtests.values() for s in values]
    return TierReport(
        tier_id=tier_id,
        name=f"tier {tier_id}",
        summary=_summary(scores),
        subtests=[
            SubtestReport(subtest_id=sid, name=f"name-{sid}", summary=_summary(values))
            for sid, values in subtests.items()
        ],
        best_subtest=best,
        scores=scores,
    )


@pytest.fixture
def report() -> ReportInput:
    tiers = [
        # T0: 3 of 6 pass.
        _tier("T0", {"00": [0.9, 0.8, 0.2], "01": [0.7, 0.3, 0.1]}, best="00"),
        # T1: nothing passes -> infinite Cost-of-Pass.
        _tier("T1", {"01": [0.1, 0.2, 0.3, 0.4, 0.5, 0.55]}, best="01"),
        # T2: two runs only -> "too few runs".
        _tier("T2", {"02": [0.95, 0.99]}, best="02"),
    ]
    comparisons = compare_groups({t.tier_id: t.scores for t in tiers})
    return ReportInput(
        experiment_id="test-001",
        experiment_name=HOSTILE_NAME,
        judge_mode="llm: model-a, model-b",
        tiers=tiers,
        comparisons=comparisons,
        agent_cost_usd=2.5,
        judge_cost_usd=1.25,
        generated_at=datetime(2026, 1, 20, 6, 13, 7, tzinfo=UTC),
    )


# --- Markdown -------------------------------------------------------------------------------


def test_markdown_has_sections_and_key_numbers(report: ReportInput) -> None:
    text = render_markdown(report)
    assert text.startswith("# Experiment report: ")
    assert "Judged by: llm: model-a, model-b" in text
    assert "agent $2.5000, judges $1.2500, total $3.7500" in text
    low, high = wilson_interval(3, 6)
    assert f"50.0% [{low * 100:.1f}%, {high * 100:.1f}%]" in text
    t0 = report.tiers[0].summary
    assert t0.mean_score_ci is not None
    assert f"{t0.mean_score:.3f} [{t0.mean_score_ci[0]:.3f}, {t0.mean_score_ci[1]:.3f}]" in text
    assert "## T0 tier T0: sub-tests" in text
    assert "00 name-00 (best)" in text
    # Sub-test 00 passes 2 of 3 runs: pass@1 = 2/3, pass@3 = 1; pass@5 needs 5 runs.
    assert "@1 66.7%, @3 100.0% |" in text
    assert "$0.5000" in text  # T0 Cost-of-Pass: 0.25 / 0.5


def test_markdown_comparison_table(report: ReportInput) -> None:
    text = render_markdown(report)
    assert "## Tier comparisons" in text
    assert "Adjusted p (Holm)" in text and "Cliff's δ" in text
    for pair in ("T0 vs T1", "T1 vs T2", "T0 vs T2"):
        assert f"| {pair} |" in text
    t1_t2 = report.comparisons[1]
    assert t1_t2.too_few_runs
    row = next(line for line in text.splitlines() if line.startswith("| T1 vs T2 |"))
    assert "too few runs to mean anything (6 vs 2" in row
    assert f"{t1_t2.runs_needed_for_power} runs per tier needed for 80% power" in row
    assert f"{t1_t2.cliffs_delta:+.3f}" in row and t1_t2.magnitude in row  # type: ignore[operator]


def test_markdown_infinite_cost_of_pass(report: ReportInput) -> None:
    text = render_markdown(report)
    t1_row = next(line for line in text.splitlines() if line.startswith("| T1 tier T1 |"))
    assert "∞ (no passes)" in t1_row


def test_markdown_escapes_names(report: ReportInput) -> None:
    text = render_markdown(report)
    assert "<script>" not in text
    assert "&lt;script&gt;" in text
    assert escape_markdown("a|b\nc") == "a\\|b c"
    # Every table row keeps its column count despite the pipe in the name.
    header = next(line for line in text.splitlines() if line.startswith("| Tier |"))
    columns = header.count(" | ")
    for line in text.splitlines():
        if line.startswith("| T") and "tier T" in line:
            assert line.replace("\\|", "").count(" | ") == columns


def test_markdown_without_comparisons_or_runs() -> None:
    empty = _summary([])
    report = ReportInput(
        experiment_id="x",
        judge_mode="commands only (LLM judging off)",
        tiers=[TierReport(tier_id="T0", summary=empty)],
        agent_cost_usd=0.0,
        judge_cost_usd=0.0,
        generated_at=datetime(2026, 1, 1, tzinfo=UTC),
    )
    text = render_markdown(report)
    assert "# Experiment report: x" in text
    assert "commands only (LLM judging off)" in text
    assert "No comparisons" in text and "No sub-tests." in text
    assert "| T0 | 0 | 0 / 0 / 0 / 0 | n/a [0.0%, 100.0%] | n/a |" in text


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
    assert parsed.tags.count("svg") == 2
    assert "rect" in parsed.tags and "circle" in parsed.tags
    # tier table + one sub-test table per tier + comparison table
    assert parsed.tags.count("table") == 1 + len(report.tiers) + 1
    text = "".join(parsed.text)
    assert "Judged by: llm: model-a, model-b" in text
    assert "∞ (no passes)" in text
    assert "T1 vs T2" in text and "too few runs to mean anything" in text
    assert "Pass rate per tier" in text


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


def test_html_is_deterministic(report: ReportInput) -> None:
    assert render_html(report) == render_html(report)


def test_html_tier_without_runs() -> None:
    report = ReportInput(
        experiment_id="x",
        judge_mode="commands only (LLM judging off)",
        tiers=[
            TierReport(tier_id="T0", summary=_summary([])),
            TierReport(tier_id="T1", summary=_summary([0.9]), scores=[0.9]),
        ],
        agent_cost_usd=0.0,
        judge_cost_usd=0.0,
        generated_at=datetime(2026, 1, 1, tzinfo=UTC),
    )
    parsed = _parse(render_html(report))
    assert "no runs" in "".join(parsed.text)
    assert parsed.tags.count("svg") == 2


def test_cost_of_pass_formatting() -> None:
    assert fmt_cost_of_pass(_summary([0.1, 0.2])) == "∞ (no passes)"
    assert fmt_cost_of_pass(_summary([])) == "n/a"
    assert fmt_cost_of_pass(_summary([0.9, 0.1])) == "$0.5000"


def test_report_input_round_trips_through_json(report: ReportInput) -> None:
    again = ReportInput.model_validate_json(report.model_dump_json())
    assert again == report
    assert render_markdown(again) == render_markdown(report)


# --- terminal summary -----------------------------------------------------------------------


def _run(tier: str, run: int, outcome: str, score: float | None, cost: float) -> RunRecord:
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


def test_counts_attempts_and_records_not_counted_in_both_reports(report: ReportInput) -> None:
    counted = report.model_copy(
        update={
            "counts": RunCounts(
                passed=3, failed=6, timed_out=2, error=1, earlier_attempts=2, replaced_judged_runs=1
            ),
            "notes": [f"results/x/T0/00/run-02/run_result.json: {HOSTILE_NAME}; not counted"],
        }
    )
    counted.tiers[0].counts = RunCounts(passed=3, failed=3, timed_out=2, error=1)
    markdown = render_markdown(counted)
    assert "| T0 tier T0 | 7 | 3 / 3 / 2 / 1 |" in markdown
    assert "2 earlier attempt(s) kept, their spend included in costs" in markdown
    assert "1 judged run(s) replaced by --scylla-rerun-failed" in markdown
    assert "## Not counted" in markdown and "&lt;script&gt;" in markdown
    html = render_html(counted)
    assert '<td class="num">3 / 3 / 2 / 1</td>' in html
    assert "<h2>Not counted</h2>" in html and "<script>alert" not in html
