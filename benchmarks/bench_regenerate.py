"""`--scylla-regenerate` on 1,000 run records: wall time, and proof that no request is made.

Writes synthetic but valid run records (RunRecord with agent, checks, a panel of three judges
and a consensus built by the real scoring code) for the shipped test-001 across all its tiers
and sub-tests (20 sub-tests x 50 runs = 1,000), then times

    pytest experiments/test-001 --scylla-regenerate --runs 50 --results-dir DIR

in a subprocess whose collection matches the records exactly. A FakeMessagesAPI is set as
ANTHROPIC_BASE_URL for that subprocess: it must see no request.

    python benchmarks/bench_regenerate.py [--runs 50] [--repeat 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pytest_scylla.judges.checks import command_item_scores
from pytest_scylla.judges.consensus import build_consensus
from pytest_scylla.pricing import PricingTable
from pytest_scylla.records import (
    RUN_RECORD_FILE,
    AgentRecord,
    CheckResult,
    ChecksRecord,
    ItemJudgment,
    JudgeRecord,
    RunRecord,
    StageDurations,
    TokenUsage,
    WorkspaceRecord,
    atomic_write_text,
    dump_record,
)
from pytest_scylla.spec.load_experiment import Experiment, load_experiment
from pytest_scylla.testing.fake_api import FakeMessagesAPI, RecordedRequest, Reply

ROOT = Path(__file__).resolve().parents[1]
TEST_FILE = ROOT / "experiments" / "test-001" / "test.yaml"
PANEL = ["claude-opus-4-6", "claude-sonnet-4-6", "claude-haiku-4-5"]
FAKE_KEY = "sk-ant-bench-not-a-secret"
SCALED_VALUES = [0.0, 0.25, 0.5, 0.75, 1.0]


def check(name: str, command: str, exit_code: int) -> CheckResult:
    return CheckResult(
        name=name,
        command=command,
        exit_code=exit_code,
        duration_s=0.02,
        output_tail="" if exit_code == 0 else "python3: can't open file 'hello.py'",
    )


def synthetic_record(
    experiment: Experiment, tier: str, subtest: str, run: int, rng: random.Random
) -> RunRecord:
    rubric = experiment.normalized_rubric
    pricing = PricingTable.load()
    # Mostly a correct hello.py; now and then a command item fails (a longer file, say).
    failing = {"Q2"} if rng.random() < 0.15 else set()
    if rng.random() < 0.05:
        failing |= {"F2", "F4"}
    commands = {
        item.id: check(item.id, item.command, 1 if item.id in failing else 0)
        for item in rubric.items()
        if item.command is not None
    }
    checks = ChecksRecord(
        baseline=[check(c.name, c.command, 2) for c in experiment.spec.checks],
        after=[check(c.name, c.command, 0) for c in experiment.spec.checks],
        rubric_commands=commands,
    )
    judged = [item for item in rubric.items() if item.command is None]
    judges = []
    for model in PANEL:
        tokens = TokenUsage(
            input_tokens=rng.randint(200, 300),
            output_tokens=rng.randint(30, 80),
            cache_creation_input_tokens=0 if run > 1 else 1800,
            cache_read_input_tokens=1800 if run > 1 else 0,
        )
        judges.append(
            JudgeRecord(
                model=model,
                status="ok",
                items={
                    item.id: ItemJudgment(
                        achieved=rng.choice(SCALED_VALUES) * item.points,
                        reason="synthetic judgment",
                    )
                    for item in judged
                },
                overall_reasoning="synthetic run for the regenerate benchmark",
                tokens=tokens,
                cost_usd=pricing.cost(model, tokens),
                latency_s=round(rng.uniform(2, 9), 3),
                attempts=1,
                prompt_sha256=hashlib.sha256(
                    f"{tier}/{subtest}/{run}/{model}".encode()
                ).hexdigest(),
            )
        )
    result, consensus = build_consensus(
        rubric,
        command_item_scores(rubric, commands),
        judges,
        pass_threshold=experiment.pass_threshold(None),
        grade_scale=experiment.rubric.grading.grade_scale or None,
    )
    started = f"2026-01-01T{run % 24:02d}:{run % 60:02d}:00+00:00"
    return RunRecord(
        experiment_id=experiment.id,
        tier=tier,
        subtest=subtest,
        run=run,
        node_id=f"experiments/test-001/test.yaml::{tier}::{subtest}[run-{run:02d}]",
        agent_name="oracle",
        judge_mode="llm",
        judge_models=PANEL,
        outcome="passed" if result.passed else "failed",
        agent=AgentRecord(agent="oracle", exit_code=0, duration_s=0.01),
        checks=checks,
        workspace=WorkspaceRecord(
            files=["README.md", "hello.py"], files_changed=1, insertions=1, deletions=0
        ),
        judges=judges,
        consensus=consensus,
        result=result,
        fixture_sha256=experiment.fixture_hash,
        durations=StageDurations(workspace_s=0.03, agent_s=0.01, checks_s=0.5, judge_s=6.0),
        started_at=started,
        finished_at=started,
    )


def write_records(results: Path, runs: int, seed: int = 1) -> int:
    experiment = load_experiment(TEST_FILE)
    rng = random.Random(seed)
    written = 0
    for tier in experiment.spec.tiers:
        for subtest in experiment.catalogue.subtests(tier):
            for run in range(1, runs + 1):
                record = synthetic_record(experiment, tier, subtest.id, run, rng)
                run_dir = results / experiment.id / tier / subtest.id / f"run-{run:02d}"
                atomic_write_text(run_dir / RUN_RECORD_FILE, dump_record(record))
                written += 1
    return written


def snapshot(results: Path) -> dict[Path, str]:
    """sha256 of every run record: regenerating consistent records must not change one."""
    return {
        path: hashlib.sha256(path.read_bytes()).hexdigest()
        for path in results.rglob(RUN_RECORD_FILE)
    }


def never_called(request: RecordedRequest) -> Reply:
    return Reply(text="regenerate must not ask anything")


def regenerate(results: Path, runs: int, base_url: str) -> tuple[float, str]:
    argv = [
        sys.executable,
        "-m",
        "pytest",
        str(TEST_FILE.parent),
        "--scylla-regenerate",
        "--runs",
        str(runs),
        "--agent",
        "oracle",
        "--judge-model",
        PANEL[0],
        *(arg for model in PANEL[1:] for arg in ("--add-judge", model)),
        "--results-dir",
        str(results),
        "-p",
        "no:cacheprovider",
        "-q",
    ]
    env = {**os.environ, "ANTHROPIC_BASE_URL": base_url, "ANTHROPIC_API_KEY": FAKE_KEY}
    started = time.perf_counter()
    done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if done.returncode not in (0, 1):  # 1: some synthetic runs scored below the threshold
        raise SystemExit(
            f"regenerate failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        )
    return elapsed, done.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50, help="runs per sub-test (20 sub-tests)")
    parser.add_argument("--repeat", type=int, default=3, help="regenerate sessions to time")
    parser.add_argument("--json", type=Path, help="write the figures to this file")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="scylla-bench-regen-") as tmp:
        results = Path(tmp) / "results"
        started = time.perf_counter()
        records = write_records(results, args.runs)
        write_s = time.perf_counter() - started
        print(f"wrote {records} run records in {write_s:.2f} s")
        aggregates = results / "test-001" / "result.json"
        before = snapshot(results)
        times = []
        with FakeMessagesAPI(never_called) as api:
            for attempt in range(1, args.repeat + 1):
                elapsed, output = regenerate(results, args.runs, api.base_url)
                summary = output.strip().splitlines()[-1]
                counted = sum(int(n) for n in re.findall(r"(\d+) (?:passed|failed)", summary))
                if counted != records:
                    raise SystemExit(f"collected {counted} runs, wrote {records}: {summary}")
                if not aggregates.is_file():
                    raise SystemExit("no result.json written")
                times.append(elapsed)
                print(f"regenerate #{attempt}: {elapsed:.2f} s wall  ({summary})")
            requests = len(api.requests)
        after = snapshot(results)
        rewritten = sum(after.get(path) != digest for path, digest in before.items())
        print(
            f"regenerate {records} records: median {statistics.median(times):.2f} s wall"
            f" ({1000 * statistics.median(times) / records:.2f} ms per record, pytest start-up"
            " included)"
        )
        print(f"run records rewritten by regenerate (should be 0): {rewritten}")
        print(f"requests seen by the fake API: {requests}")
        figures = {
            "records": records,
            "write_s": round(write_s, 3),
            "regenerate_wall_s": [round(t, 3) for t in times],
            "regenerate_median_s": round(statistics.median(times), 3),
            "records_rewritten": rewritten,
            "requests": requests,
        }
        if args.json:
            args.json.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
        if requests:
            raise SystemExit(f"--scylla-regenerate made {requests} requests")


if __name__ == "__main__":
    main()
