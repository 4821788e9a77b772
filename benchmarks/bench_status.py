"""`--scylla-status` and a plain resume on a 10,000-run results tree (issue 11; target <= 5 s each).

Writes synthetic, valid run records (the records of bench_regenerate.py, plus the
`settings` a real session stores) for the shipped test-001: 20 sub-tests x 500 runs. Then
times, each in a fresh subprocess (pytest start-up included):

    pytest experiments/test-001 --runs 500 ...options... --scylla-status   (status)
    pytest <results>/ --scylla-status                                    (status of a folder)
    pytest experiments/test-001 --runs 500 ...options...                   (plain resume)

The resume must report every run from disk and ask the fake API nothing. With `--profile`
the resume runs under cProfile and the top functions are printed.

    python benchmarks/bench_status.py [--runs 500] [--repeat 3] [--profile] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_regenerate import PANEL, TEST_FILE, never_called, synthetic_record

from pytest_scylla.records import RUN_RECORD_FILE, atomic_write_text, dump_record
from pytest_scylla.recovery import snapshot_experiment
from pytest_scylla.run_settings import run_settings_for
from pytest_scylla.settings import ScyllaSettings
from pytest_scylla.spec.load_experiment import load_experiment
from pytest_scylla.testing.fake_api import FakeMessagesAPI

ROOT = Path(__file__).resolve().parents[1]
FAKE_KEY = "sk-ant-bench-not-a-secret"


def session_options(runs: int, results: Path) -> list[str]:
    return [
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


def write_tree(results: Path, runs: int, seed: int = 11) -> int:
    experiment = load_experiment(TEST_FILE)
    settings = ScyllaSettings(agent="oracle", judge_model=PANEL[0], add_judges=PANEL[1:])
    rng = random.Random(seed)
    # What the first real session saves beside the records: recovery and a status of the
    # results folder read it.
    snapshot_experiment(experiment.test_file, experiment.spec, results)
    written = 0
    for tier in experiment.spec.tiers:
        for subtest in experiment.catalogue.subtests(tier):
            run_settings = run_settings_for(settings, experiment, subtest)
            for run in range(1, runs + 1):
                record = synthetic_record(experiment, tier, subtest.id, run, rng)
                record.settings = run_settings
                assert record.agent is not None
                record.agent.cost_usd = round(rng.uniform(0.05, 0.4), 4)
                path = results / experiment.id / tier / subtest.id / f"run-{run:02d}"
                atomic_write_text(path / RUN_RECORD_FILE, dump_record(record))
                written += 1
    return written


def timed(argv: list[str], env: dict[str, str]) -> tuple[float, subprocess.CompletedProcess[str]]:
    started = time.perf_counter()
    done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True)
    return time.perf_counter() - started, done


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=500, help="runs per sub-test (20 sub-tests)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--profile", action="store_true", help="cProfile the resume once")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="scylla-bench-status-") as tmp:
        results = Path(tmp) / "results"
        started = time.perf_counter()
        records = write_tree(results, args.runs)
        print(f"wrote {records} run records in {time.perf_counter() - started:.1f} s")
        options = session_options(args.runs, results)
        pytest = [sys.executable, "-m", "pytest"]
        commands = {
            "status": [*pytest, str(TEST_FILE.parent), *options, "--scylla-status"],
            "status_folder": [*pytest, str(results), "--scylla-status", "-p", "no:cacheprovider"],
            "resume": [*pytest, str(TEST_FILE.parent), *options],
        }
        figures: dict[str, object] = {"records": records}
        with FakeMessagesAPI(never_called) as api:
            env = {**os.environ, "ANTHROPIC_BASE_URL": api.base_url, "ANTHROPIC_API_KEY": FAKE_KEY}
            for name, argv in commands.items():
                times = []
                for _ in range(args.repeat):
                    elapsed, done = timed(argv, env)
                    if done.returncode not in (0, 1):
                        raise SystemExit(
                            f"{name} failed ({done.returncode}):\n{done.stdout[-3000:]}\n"
                            f"{done.stderr[-3000:]}"
                        )
                    times.append(elapsed)
                last = done.stdout.strip().splitlines()
                print(f"{name}: median {statistics.median(times):.2f} s  runs {times}")
                print("   ", last[-1] if last else "")
                if name.startswith("status"):
                    plan = [line for line in last if "would execute" in line]
                    print("   ", plan[0] if plan else "(no plan line)")
                figures[f"{name}_s"] = [round(t, 3) for t in times]
                figures[f"{name}_median_s"] = round(statistics.median(times), 3)
            if api.requests:
                raise SystemExit(f"{len(api.requests)} requests reached the fake API")
            if args.profile:
                profile = Path(tmp) / "resume.prof"
                argv = [sys.executable, "-m", "cProfile", "-o", str(profile), "-m", "pytest"]
                timed([*argv, str(TEST_FILE.parent), *options], env)
                import pstats

                stats = pstats.Stats(str(profile))
                stats.sort_stats("cumulative").print_stats(35)
        if args.json:
            args.json.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
