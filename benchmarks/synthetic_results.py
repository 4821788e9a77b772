"""Synthetic, valid results trees for the benchmarks: run records a real session could have left.

`synthetic_record` builds one judged run of the shipped test-001 with the real scoring code
(command items, a judge panel, consensus). `write_results_tree` writes several experiments
(copies of test-001 under other ids, each with its snapshot as a first session leaves it),
every tier and sub-test, a panel of 1 to 3 judges per experiment, about 5% timed-out runs
(graded), 2% sandbox errors, 1% runs whose every judge failed, 3% with one judge failed,
and costs and tokens reported by a claude-code agent.

    python benchmarks/synthetic_results.py DIR [--experiments 5] [--runs 100]
"""

from __future__ import annotations

import argparse
import hashlib
import random
import shutil
import time
from pathlib import Path

import yaml

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
    RunError,
    RunRecord,
    StageDurations,
    TokenUsage,
    WorkspaceRecord,
    atomic_write_text,
    dump_record,
)
from pytest_scylla.spec.load_experiment import Experiment, load_experiment

ROOT = Path(__file__).resolve().parents[1]
TEST_FILE = ROOT / "experiments" / "test-001" / "test.yaml"
PANEL = ["claude-opus-4-6", "claude-sonnet-4-6", "claude-haiku-4-5"]
SCALED_VALUES = [0.0, 0.25, 0.5, 0.75, 1.0]
AGENT_MODEL = "claude-sonnet-4-6"
_PRICING: PricingTable | None = None


def _pricing() -> PricingTable:
    global _PRICING  # loaded once: 10,000 records would parse the table 30,000 times
    if _PRICING is None:
        _PRICING = PricingTable.load()
    return _PRICING


def check(name: str, command: str, exit_code: int) -> CheckResult:
    return CheckResult(
        name=name,
        command=command,
        exit_code=exit_code,
        duration_s=0.02,
        output_tail="" if exit_code == 0 else "python3: can't open file 'hello.py'",
    )


def _judge(
    model: str, judged: list, tier: str, subtest: str, run: int, rng: random.Random, skill: float
) -> JudgeRecord:
    tokens = TokenUsage(
        input_tokens=rng.randint(200, 300),
        output_tokens=rng.randint(30, 80),
        cache_creation_input_tokens=0 if run > 1 else 1800,
        cache_read_input_tokens=1800 if run > 1 else 0,
    )
    weights = [max(0.05, 1 - abs(value - skill) * 2) for value in SCALED_VALUES]
    return JudgeRecord(
        model=model,
        status="ok",
        items={
            item.id: ItemJudgment(
                achieved=rng.choices(SCALED_VALUES, weights)[0] * item.points,
                reason="synthetic judgment",
            )
            for item in judged
        },
        overall_reasoning="synthetic run for the benchmarks",
        tokens=tokens,
        cost_usd=_pricing().cost(model, tokens),
        latency_s=round(rng.uniform(2, 9), 3),
        attempts=1,
        prompt_sha256=hashlib.sha256(f"{tier}/{subtest}/{run}/{model}".encode()).hexdigest(),
    )


def synthetic_record(
    experiment: Experiment,
    tier: str,
    subtest: str,
    run: int,
    rng: random.Random,
    panel: list[str] | None = None,
    agent_name: str = "oracle",
    skill: float = 0.75,
) -> RunRecord:
    """One judged run: mostly a correct hello.py; now and then a command item fails."""
    panel = PANEL if panel is None else panel
    rubric = experiment.normalized_rubric
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
    judges = [_judge(model, judged, tier, subtest, run, rng, skill) for model in panel]
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
        node_id=f"{experiment.test_file.parent.name}/test.yaml::{tier}::{subtest}[run-{run:02d}]",
        agent_name=agent_name,
        model=AGENT_MODEL if agent_name == "claude-code" else None,
        judge_mode="llm",
        judge_models=list(panel),
        outcome="passed" if result.passed else "failed",
        agent=AgentRecord(agent=agent_name, exit_code=0, duration_s=0.01),
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


def _with_faults(record: RunRecord, rng: random.Random) -> RunRecord:
    """Costs and tokens as claude-code reports them, then timeouts and failures."""
    assert record.agent is not None
    record.agent.cost_usd = round(rng.uniform(0.05, 0.4), 4)
    record.agent.cli_version = "2.1.0"
    record.agent.model = AGENT_MODEL
    record.agent.tokens_by_model = {
        AGENT_MODEL: TokenUsage(
            input_tokens=rng.randint(20, 60),
            output_tokens=rng.randint(400, 1200),
            cache_creation_input_tokens=rng.randint(5_000, 25_000),
            cache_read_input_tokens=rng.randint(50_000, 150_000),
        )
    }
    draw = rng.random()
    if draw < 0.05:
        record.agent.timed_out = True  # graded like any run: passes or fails on its workspace
        record.agent.exit_code = None
    elif draw < 0.07:
        record.outcome, record.stage = "error", "started"
        record.error = RunError(stage="sandbox", message="container exited (synthetic)")
        record.agent.finished = False
        record.judges, record.consensus, record.result = [], None, None
    elif draw < 0.08:
        record.outcome, record.stage = "error", "agent-done"
        record.error = RunError(stage="judge", message="no judge succeeded")
        record.judges = [
            JudgeRecord(model=judge.model, status="failed", error="overloaded", attempts=3)
            for judge in record.judges
        ]
        record.consensus, record.result = None, None
    elif draw < 0.11 and len(record.judges) > 1:
        failed = record.judges[-1]
        record.judges[-1] = JudgeRecord(
            model=failed.model, status="failed", error="invalid answer", attempts=3
        )
    return record


def copy_experiment(source: Path, target: Path, experiment_id: str) -> Path:
    """test-001 under another id: the same task, another folder (a second "task")."""
    shutil.copytree(source.parent, target, dirs_exist_ok=True)
    spec = yaml.safe_load((target / "test.yaml").read_text("utf-8"))
    spec["id"] = experiment_id
    (target / "test.yaml").write_text(yaml.safe_dump(spec, sort_keys=False), "utf-8")
    return target / "test.yaml"


def write_results_tree(
    results: Path, experiments_dir: Path, experiments: int, runs: int, seed: int = 12
) -> int:
    """`experiments` copies of test-001, every sub-test with `runs` runs; returns records."""
    from pytest_scylla.recovery import snapshot_experiment
    from pytest_scylla.run_settings import run_settings_for
    from pytest_scylla.settings import ScyllaSettings

    rng = random.Random(seed)
    written = 0
    for index in range(experiments):
        test_file = copy_experiment(
            TEST_FILE, experiments_dir / f"task-{index + 1:02d}", f"task-{index + 1:02d}"
        )
        experiment = load_experiment(test_file)
        panel = PANEL[: 1 + index % 3]
        settings = ScyllaSettings(
            agent="claude-code", model=AGENT_MODEL, judge_model=panel[0], add_judges=panel[1:]
        )
        snapshot_experiment(experiment.test_file, experiment.spec, results)
        for tier_index, tier in enumerate(experiment.spec.tiers):
            skill = 0.3 + 0.05 * tier_index + 0.04 * index  # tiers and tasks differ a little
            for subtest in experiment.catalogue.subtests(tier):
                run_settings = run_settings_for(settings, experiment, subtest)
                for run in range(1, runs + 1):
                    record = synthetic_record(
                        experiment, tier, subtest.id, run, rng, panel, "claude-code", skill
                    )
                    record.settings = run_settings
                    record = _with_faults(record, rng)
                    path = results / experiment.id / tier / subtest.id / f"run-{run:02d}"
                    atomic_write_text(path / RUN_RECORD_FILE, dump_record(record))
                    written += 1
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path)
    parser.add_argument("--experiments", type=int, default=5)
    parser.add_argument("--runs", type=int, default=100, help="runs per sub-test (20 each)")
    args = parser.parse_args()
    started = time.perf_counter()
    written = write_results_tree(
        args.results, args.results.parent / "experiments", args.experiments, args.runs
    )
    print(f"wrote {written} run records in {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
