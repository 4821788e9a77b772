"""What reading results back costs: the session-start schema scan, the record loader and the
aggregates, over N synthetic run records (20 sub-tests, each run with a panel of three judges
and one earlier attempt, so migration-free loading and attempts are both exercised).

    python benchmarks/bench_records.py [--runs 1000] [--repeat 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from pytest_scylla.aggregate import aggregate_experiment, write_aggregates
from pytest_scylla.records import (
    AgentRecord,
    AttemptRecord,
    ChecksRecord,
    ItemJudgment,
    JudgeRecord,
    RunRecord,
    ScoreRecord,
    TokenUsage,
    WorkspaceRecord,
    atomic_write_text,
    dump_record,
)
from pytest_scylla.results_layout import (
    RUN_RECORD_FILE,
    load_experiment_records,
    newer_schema_records,
    run_dir,
)

SUBTESTS = [(f"T{tier}", f"{index:02d}-sub") for tier in range(4) for index in range(5)]


def synthetic(run: int, tier: str, subtest: str) -> RunRecord:
    judges = [
        JudgeRecord(
            model=model,
            status="ok",
            items={f"Q{i}": ItemJudgment(achieved=0.5, reason="fine " * 20) for i in range(8)},
            overall_reasoning="reasoning " * 50,
            score=0.7,
            tokens=TokenUsage(input_tokens=5000, output_tokens=800),
            cost_usd=0.05,
        )
        for model in ("judge-a", "judge-b", "judge-c")
    ]
    passed = run % 3 != 0
    return RunRecord(
        experiment_id="bench",
        tier=tier,
        subtest=subtest,
        run=run,
        node_id=f"bench/test.yaml::{tier}::{subtest}[run-{run:02d}]",
        agent_name="claude-code",
        model="m",
        judge_mode="llm",
        judge_models=["judge-a", "judge-b", "judge-c"],
        outcome="passed" if passed else "failed",
        agent=AgentRecord(
            agent="claude-code",
            cost_usd=0.4,
            timed_out=run % 7 == 0,
            tokens_by_model={"m": TokenUsage(input_tokens=20000, output_tokens=3000)},
        ),
        checks=ChecksRecord(),
        workspace=WorkspaceRecord(files=[f"src/file{i}.py" for i in range(30)]),
        judges=judges,
        result=ScoreRecord(
            score=0.8 if passed else 0.3,
            grade="A" if passed else "D",
            passed=passed,
            pass_threshold=0.6,
            category_scores={"a": 0.8},
            items=[],
        ),
        started_at="2026-01-01T00:00:00+00:00",
        finished_at="2026-01-01T00:10:00+00:00",
        attempts=[AttemptRecord(attempt=1, outcome="error", stage="started", files="attempts/1")],
    )


def timed(function: Callable[[], object], repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        function()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", type=Path)
    options = parser.parse_args()
    per_subtest = max(1, options.runs // len(SUBTESTS))
    with tempfile.TemporaryDirectory() as folder:
        results = Path(folder)
        for tier, subtest in SUBTESTS:
            for run in range(1, per_subtest + 1):
                path = run_dir(results, "bench", tier, subtest, run) / RUN_RECORD_FILE
                atomic_write_text(path, dump_record(synthetic(run, tier, subtest)))
        count = per_subtest * len(SUBTESTS)
        size = sum(p.stat().st_size for p in results.rglob(RUN_RECORD_FILE)) / count
        loaded = load_experiment_records(results / "bench")
        result = aggregate_experiment("bench", loaded.records, loaded.damaged)
        write_aggregates(results / "bench", result)
        figures = {
            "records": count,
            "mean_record_bytes": round(size),
            "schema_scan_s": timed(lambda: newer_schema_records(results), options.repeat),
            "load_s": timed(lambda: load_experiment_records(results / "bench"), options.repeat),
            "aggregate_s": timed(
                lambda: aggregate_experiment("bench", loaded.records, loaded.damaged),
                options.repeat,
            ),
            "rewrite_unchanged_aggregates_s": timed(
                lambda: write_aggregates(results / "bench", result), options.repeat
            ),
        }
    for name, value in figures.items():
        print(f"{name:32} {value:.4f}" if isinstance(value, float) else f"{name:32} {value}")
    if options.json:
        options.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
