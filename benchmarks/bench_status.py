"""`--scylla-status` and a plain resume on a 10,000-run results tree (issue 11; target <= 5 s each).

Writes synthetic, valid run records (the records of bench_regenerate.py, plus the
`settings` a real session stores) for the shipped test-001: 20 sub-tests x 500 runs. Then
times, each in a fresh subprocess (pytest start-up included):

    pytest experiments/test-001 --runs 500 ...options... --scylla-status   (status)
    pytest <results>/ --scylla-status                                    (status of a folder)
    pytest experiments/test-001 --runs 500 ...options...                   (plain resume)

For scale, `floor` times pytest alone on this machine, with the same installed plugins and
`-p no:cacheprovider -q`, on a file of as many empty tests as there are runs: what one pytest
item per run costs before the plugin does anything (`floor_quiet`: the same without output
and log capture, which a replayed run skips).

The resume must report every run from disk and ask the fake API nothing. The synthetic tree
has no aggregates yet, so the first resume (`resume_first`, run once) builds them and the
reports; the later ones (`resume`) find every record as it was and reuse them, as a real
resume of a finished study does. Each figure is wall time, the CPU time of the pytest
process (user + system, from getrusage(RUSAGE_CHILDREN): far less sensitive to the other
processes of a shared machine) and the 1-minute load average before it. With `--profile`
the resume runs under cProfile and the top functions are printed.

    python benchmarks/bench_status.py [--runs 500] [--repeat 3] [--profile] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
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


@dataclass
class Timing:
    wall_s: float
    cpu_s: float  # user + system of the child
    load: float  # 1-minute load average before the run


def timed(argv: list[str], env: dict[str, str]) -> tuple[Timing, subprocess.CompletedProcess[str]]:
    load = os.getloadavg()[0]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return Timing(round(wall, 3), round(cpu, 3), round(load, 2)), done


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
            "resume_first": [*pytest, str(TEST_FILE.parent), *options],
            "resume": [*pytest, str(TEST_FILE.parent), *options],
        }
        empty_tests = Path(tmp) / "floor" / "test_empty.py"
        empty_tests.parent.mkdir()
        empty_tests.write_text(
            "import pytest\n\n\n"
            f"@pytest.mark.parametrize('run', range({records}))\n"
            "def test_run(run):\n    pass\n"
        )
        floor = [*pytest, str(empty_tests), "-p", "no:scylla", "-p", "no:cacheprovider", "-q"]
        commands["floor"] = floor
        commands["floor_quiet"] = [*floor, "-s", "-p", "no:logging"]
        figures: dict[str, object] = {"records": records}
        with FakeMessagesAPI(never_called) as api:
            env = {**os.environ, "ANTHROPIC_BASE_URL": api.base_url, "ANTHROPIC_API_KEY": FAKE_KEY}
            for name, argv in commands.items():
                timings = []
                for _ in range(1 if name == "resume_first" else args.repeat):
                    timing, done = timed(argv, env)
                    if done.returncode not in (0, 1):
                        raise SystemExit(
                            f"{name} failed ({done.returncode}):\n{done.stdout[-3000:]}\n"
                            f"{done.stderr[-3000:]}"
                        )
                    timings.append(timing)
                    if name.startswith("resume") and f"0 executed, {records} from disk" not in (
                        done.stdout
                    ):
                        raise SystemExit(f"{name} did not report every run from disk")
                last = done.stdout.strip().splitlines()
                walls = [timing.wall_s for timing in timings]
                cpus = [timing.cpu_s for timing in timings]
                print(
                    f"{name}: median {statistics.median(walls):.2f} s wall, "
                    f"{statistics.median(cpus):.2f} s CPU;  runs (wall, cpu, load) "
                    f"{[(t.wall_s, t.cpu_s, t.load) for t in timings]}"
                )
                print("   ", last[-1] if last else "")
                if name.startswith("status"):
                    plan = [line for line in last if "would execute" in line]
                    print("   ", plan[0] if plan else "(no plan line)")
                figures[name] = [asdict(timing) for timing in timings]
                figures[f"{name}_median_s"] = statistics.median(walls)
                figures[f"{name}_median_cpu_s"] = statistics.median(cpus)
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
