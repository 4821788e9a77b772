"""Upstream results read into our records (issue 12 item 9), checked against upstream's own
exported tables of the same run (`dryrun-test-001-analysis/`), never against typed-in numbers."""

from __future__ import annotations

import csv
import hashlib
import json
import shutil
from pathlib import Path

import pytest

from pytest_scylla.aggregate import aggregate_experiment
from pytest_scylla.redact import Redactor
from pytest_scylla.results_layout import load_experiment_records
from pytest_scylla.upstream import (
    IMPORT_FILE,
    UpstreamError,
    import_upstream,
    is_upstream_results,
    read_upstream,
)

UPSTREAM = Path(__file__).resolve().parents[2] / "shared" / "data" / "upstream"
SOURCE = UPSTREAM / "dryrun-test-001"
ANALYSIS = UPSTREAM / "dryrun-test-001-analysis"
pytestmark = pytest.mark.skipif(
    not SOURCE.is_dir(), reason=f"upstream reference data not found at {UPSTREAM}"
)
SECRET = "sk-ant-api03-upstream-import-secret-0123456789"


def runs_csv() -> list[dict[str, str]]:
    with (ANALYSIS / "runs.csv").open(newline="") as handle:
        return list(csv.DictReader(handle))


def judges_csv() -> list[dict[str, str]]:
    with (ANALYSIS / "judges.csv").open(newline="") as handle:
        return list(csv.DictReader(handle))


def summary_json() -> dict:
    return json.loads((ANALYSIS / "summary.json").read_text())  # holds NaN: Python reads it


def digest_tree(root: Path) -> dict[str, str]:
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def copy_of_one_run(tmp_path: Path) -> tuple[Path, Path]:
    """The upstream folder with only T0's run, to change one thing; and its run file."""
    copy = tmp_path / "upstream" / "dryrun-test-001"
    shutil.copytree(SOURCE, copy, ignore=shutil.ignore_patterns("T1", "T2", "T3", "T4", "T5", "T6"))
    return copy, copy / "T0" / "00" / "run_01" / "run_result.json"


def test_imported_runs_equal_upstreams_own_tables(tmp_path: Path) -> None:
    imported = import_upstream(SOURCE, tmp_path / "results")
    loaded = load_experiment_records(imported.folder)
    assert loaded.damaged == []
    rows = runs_csv()
    summary = summary_json()
    assert len(loaded.records) == len(rows) == summary["total_runs"]

    result = aggregate_experiment(imported.experiment_id, loaded.records, [])
    for tier, expected in summary["by_tier"].items():
        tier_rows = [row for row in rows if row["tier"] == tier]
        passes = sum(row["passed"] == "True" for row in tier_rows)
        assert result.tiers[tier].counts.passed == passes
        assert result.tiers[tier].counts.total == expected["total_runs"]
        assert result.tiers[tier].stats.mean_score == pytest.approx(expected["mean_score"])
    assert sum(r.total_agent_cost_usd for r in loaded.records) == pytest.approx(
        summary["overall_stats"]["total_cost"]
    )

    by_run = {(r.tier, r.subtest, r.run): r for r in loaded.records}
    for row in rows:
        record = by_run[(row["tier"], row["subtest"], int(row["run_number"]))]
        assert record.result is not None and record.agent is not None
        assert record.result.score == pytest.approx(float(row["score"]))
        assert record.result.grade == row["grade"]
        assert record.outcome == ("passed" if row["passed"] == "True" else "failed")
        assert record.agent.cost_usd == pytest.approx(float(row["cost_usd"]))
        assert record.agent.exit_code == int(row["exit_code"])
        assert record.durations.agent_s == pytest.approx(float(row["agent_duration_seconds"]))
        # Upstream's token columns are the agent model's; the side model comes on top.
        assert record.agent.model is not None
        main = record.agent.tokens_by_model[record.agent.model]
        assert main.input_tokens == int(row["input_tokens"])
        assert main.output_tokens == int(row["output_tokens"])
        assert main.cache_creation_input_tokens == int(row["cache_creation_tokens"])
        assert main.cache_read_input_tokens == int(row["cache_read_tokens"])
        assert record.agent.tokens.total >= int(row["total_tokens"])
        assert record.settings is None and record.checks is None and record.workspace is None

    for row in judges_csv():
        record = by_run[(row["tier"], row["subtest"], int(row["run_number"]))]
        judge = record.judges[int(row["judge_number"]) - 1]
        assert judge.model == row["judge_model"]
        assert judge.score == pytest.approx(float(row["judge_score"]))
        assert judge.status == ("ok" if row["judge_is_valid"] == "True" else "failed")


def test_judge_items_keep_points_and_na(tmp_path: Path) -> None:
    imported = import_upstream(SOURCE, tmp_path / "results")
    record = next(r for r in imported.records if r.tier == "T0")
    judgment = json.loads(
        (SOURCE / "T0" / "00" / "run_01" / "judge" / "judge_01" / "judgment.json").read_text()
    )
    items = {
        item_id: item
        for category in judgment["criteria_scores"].values()
        for item_id, item in category["items"].items()
    }
    judge = record.judges[0]
    assert set(judge.items) == set(items)
    for item_id, item in items.items():
        expected = None if item["achieved"] == "N/A" else item["achieved"]
        assert judge.items[item_id].achieved == expected
    assert any(item["achieved"] == "N/A" for item in items.values())


def test_import_reads_the_source_only_and_is_repeatable(tmp_path: Path) -> None:
    before = digest_tree(SOURCE)
    results = tmp_path / "results"
    import_upstream(SOURCE, results)
    records_after_first = digest_tree(results / "test-001" / "T0")
    import_upstream(SOURCE, results)
    assert digest_tree(SOURCE) == before
    assert digest_tree(results / "test-001" / "T0") == records_after_first
    assert json.loads((results / "test-001" / IMPORT_FILE).read_text())["source"] == str(SOURCE)


def test_import_never_overwrites_runs_made_here(tmp_path: Path) -> None:
    results = tmp_path / "results"
    own = results / "test-001" / "T0" / "00" / "run-01" / "run_result.json"
    own.parent.mkdir(parents=True)
    own.write_text("{}")
    with pytest.raises(UpstreamError, match="already holds run records"):
        import_upstream(SOURCE, results)
    assert own.read_text() == "{}"


def test_a_pass_flag_against_the_score_is_kept_and_named(tmp_path: Path) -> None:
    source, run_file = copy_of_one_run(tmp_path)
    run = json.loads(run_file.read_text())
    run["judge_passed"] = False  # upstream's majority vote, against a score above threshold
    run_file.write_text(json.dumps(run))
    _, records, notes = read_upstream(source)
    assert records[0].outcome == "failed"
    assert records[0].result is not None and records[0].result.score == run["judge_score"]
    assert any("contradicts score" in note and "T0/00 run 1" in note for note in notes)


def test_a_run_without_a_judge_score_is_an_error_not_a_zero(tmp_path: Path) -> None:
    source, run_file = copy_of_one_run(tmp_path)
    run = json.loads(run_file.read_text())
    run["judge_score"] = None
    run_file.write_text(json.dumps(run))
    _, records, _ = read_upstream(source)
    assert records[0].outcome == "error" and records[0].result is None
    assert records[0].error is not None and records[0].error.stage == "judge"


def test_a_secret_in_upstream_text_never_reaches_a_record(tmp_path: Path) -> None:
    source, run_file = copy_of_one_run(tmp_path)
    run = json.loads(run_file.read_text())
    run["judges"][0]["reasoning"] = f"the key is {SECRET}"
    run_file.write_text(json.dumps(run))
    results = tmp_path / "results"
    import_upstream(source, results, Redactor([SECRET]))
    written = b"".join(p.read_bytes() for p in results.rglob("*") if p.is_file())
    assert SECRET.encode() not in written
    assert b"the key is" in written


def test_symlinks_in_the_upstream_folder_are_not_followed(tmp_path: Path) -> None:
    source, _ = copy_of_one_run(tmp_path)
    private = tmp_path / "credentials.json"
    private.write_text('{"claudeAiOauth": {"accessToken": "private-token-value"}}')
    for name in ("prompt.md", "T0/00/run_01/judge/judge_01/judgment.json"):
        (source / name).unlink()
        (source / name).symlink_to(private)
    results = tmp_path / "results"
    imported = import_upstream(source, results)
    written = b"".join(p.read_bytes() for p in results.rglob("*") if p.is_file())
    assert b"private-token-value" not in written
    assert not (results / "test-001" / "experiment" / "prompt.md").exists()
    assert imported.records[0].judges[0].items == {}  # its judgment was a link: not read


def test_our_own_results_are_not_taken_for_upstream(tmp_path: Path) -> None:
    imported = import_upstream(SOURCE, tmp_path / "results")
    assert is_upstream_results(SOURCE)
    assert not is_upstream_results(imported.folder)  # run-NN folders, not run_NN


@pytest.mark.slow
def test_pytest_imports_then_regenerates_an_upstream_folder(pytester: pytest.Pytester) -> None:
    before = digest_tree(SOURCE)
    results = pytester.path / "results"
    imported = pytester.runpytest(
        "-p",
        "no:cacheprovider",
        f"--scylla-import-upstream={SOURCE}",
        "--results-dir",
        str(results),
    )
    assert imported.ret == 0
    folder = results / "test-001"
    aggregate = json.loads((folder / "result.json").read_text())
    assert sorted(aggregate["tiers"]) == sorted(summary_json()["by_tier"])
    assert "T6" in (folder / "report.md").read_text()
    assert not (folder / "manifest.json").exists()  # no option of that session made these runs

    regenerated = pytester.runpytest(
        "-p", "no:cacheprovider", "--scylla-regenerate", str(SOURCE), "--results-dir", str(results)
    )
    regenerated.assert_outcomes(passed=len(runs_csv()))
    assert digest_tree(SOURCE) == before
    loaded = load_experiment_records(folder)
    # Re-derived by this plugin's consensus from the judges' items.
    assert all(r.result is not None and r.result.items for r in loaded.records)
    assert all(
        r.consensus is not None and r.consensus.item_agreement is not None for r in loaded.records
    )


@pytest.mark.slow
def test_pytests_cache_is_never_written_into_the_upstream_folder(
    pytester: pytest.Pytester, tmp_path: Path
) -> None:
    # pytest makes a path given as an option's value its rootdir, and puts .pytest_cache there.
    source = tmp_path / "upstream" / "dryrun-test-001"
    shutil.copytree(SOURCE, source)
    before = digest_tree(source)
    results = pytester.path / "results"
    for option in ("--scylla-import-upstream", "--scylla-regenerate"):
        target = [f"{option}={source}"] if option.endswith("upstream") else [option, str(source)]
        refused = pytester.runpytest(f"--rootdir={source}", *target, "--results-dir", str(results))
        assert refused.ret == pytest.ExitCode.USAGE_ERROR
        assert "would write its cache into the upstream folder" in refused.stderr.str()
    assert digest_tree(source) == before and not (source / ".pytest_cache").exists()
    elsewhere = pytester.runpytest(
        f"--rootdir={pytester.path}",
        f"--scylla-import-upstream={source}",
        "--results-dir",
        str(results),
    )
    assert elsewhere.ret == 0 and (results / "test-001" / "result.json").is_file()
    assert digest_tree(source) == before
