"""`--scylla-regenerate` on 1,000 run records: wall time, and proof that no request is made.

Writes synthetic but valid run records (RunRecord with agent, checks, a panel of three judges
and a consensus built by the real scoring code) for the shipped test-001 across all its tiers
and sub-tests (20 sub-tests x 50 runs = 1,000), then times

    pytest experiments/test-001 --scylla-regenerate --runs 50 --results-dir DIR

in a subprocess whose collection matches the records exactly. A FakeMessagesAPI is set as
ANTHROPIC_BASE_URL for that subprocess: it must see no request.

    python benchmarks/bench_regenerate.py [--runs 50] [--repeat 3] [--json out.json]

With `--tree` it is the issue-12 acceptance benchmark instead: a results tree of several
experiments (benchmarks/synthetic_results.py: 5 copies of test-001, 20 sub-tests x 100 runs
each = 10,000 records, panels of 1 to 3 judges, timeouts and errors) regenerated as a whole,

    pytest RESULTS --scylla-regenerate

writing every aggregate, both reports, the five CSVs per experiment and the summary across
experiments, with 10,000 bootstrap and permutation resamples. It reports wall time, the peak
resident memory of the pytest process and the load average (the machine is shared). Target:
at most 10 s and 1 GB.

    python benchmarks/bench_regenerate.py --tree [--experiments 5] [--runs 100] [--repeat 3]
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

sys.path.insert(0, str(Path(__file__).resolve().parent))

from synthetic_results import PANEL, TEST_FILE, synthetic_record, write_results_tree

from pytest_scylla.records import RUN_RECORD_FILE, atomic_write_text, dump_record
from pytest_scylla.report.csv import CSV_FILES
from pytest_scylla.spec.load_experiment import load_experiment
from pytest_scylla.testing.fake_api import FakeMessagesAPI, RecordedRequest, Reply

ROOT = Path(__file__).resolve().parents[1]
FAKE_KEY = "sk-ant-bench-not-a-secret"
__all__ = ["PANEL", "TEST_FILE", "never_called", "synthetic_record"]  # bench_status uses them


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


def timed_child(argv: list[str], env: dict[str, str]) -> tuple[float, float, int, int, str]:
    """(wall seconds, CPU seconds, peak RSS in bytes, exit status, stdout) of one child."""
    started = time.perf_counter()
    with tempfile.TemporaryFile() as out:
        child = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
        elapsed = time.perf_counter() - started
        out.seek(0)
        text = out.read().decode("utf-8", "replace")
    cpu = usage.ru_utime + usage.ru_stime
    return elapsed, cpu, usage.ru_maxrss * 1024, child.returncode, text


def aggregates_in_process(results: Path) -> dict[str, float]:
    """CPU seconds of what the controller does after the runs, split: reading the records,
    aggregating (statistics) and rendering reports and CSVs; the rest of a regenerate is the
    per-run path (one pytest item per run)."""
    from pytest_scylla.aggregate import aggregate_experiment
    from pytest_scylla.report.files import experiment_files
    from pytest_scylla.report.summary import summary_files
    from pytest_scylla.results_layout import load_experiment_records

    spent = {"load_cpu_s": 0.0, "aggregate_cpu_s": 0.0, "reports_cpu_s": 0.0}
    aggregated = {}
    for folder in sorted(p for p in results.iterdir() if p.is_dir() and p.name[0] != "."):
        started = time.process_time()
        loaded = load_experiment_records(folder)
        loaded_at = time.process_time()
        result = aggregate_experiment(folder.name, loaded.records, loaded.damaged)
        aggregated_at = time.process_time()
        experiment_files(result, loaded.records)
        spent["load_cpu_s"] += loaded_at - started
        spent["aggregate_cpu_s"] += aggregated_at - loaded_at
        spent["reports_cpu_s"] += time.process_time() - aggregated_at
        aggregated[folder.name] = result
    started = time.process_time()
    summary_files(aggregated)
    spent["reports_cpu_s"] += time.process_time() - started
    print("in process: " + ", ".join(f"{name} {value:.2f}" for name, value in spent.items()))
    return {name: round(value, 2) for name, value in spent.items()}


def tree_benchmark(args: argparse.Namespace) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="scylla-bench-tree-") as tmp:
        results = Path(tmp) / "results"
        started = time.perf_counter()
        records = write_results_tree(
            results, Path(tmp) / "experiments", args.experiments, args.runs
        )
        print(f"wrote {records} run records in {time.perf_counter() - started:.1f} s")
        argv = [sys.executable, "-m", "pytest", str(results), "--scylla-regenerate"]
        argv += ["-p", "no:cacheprovider", "-q"]
        figures: dict[str, object] = {"records": records, "experiments": args.experiments}
        times, cpus, peaks, loads = [], [], [], []
        with FakeMessagesAPI(never_called) as api:
            env = {**os.environ, "ANTHROPIC_BASE_URL": api.base_url, "ANTHROPIC_API_KEY": FAKE_KEY}
            for attempt in range(1, args.repeat + 1):
                loads.append(os.getloadavg()[0])
                elapsed, cpu, peak, status, output = timed_child(argv, env)
                if status not in (0, 1):  # 1: some runs failed or errored, as synthesized
                    raise SystemExit(f"regenerate failed ({status}):\n{output[-3000:]}")
                times.append(elapsed)
                cpus.append(cpu)
                peaks.append(peak)
                summary = output.strip().splitlines()[-1]
                print(
                    f"regenerate #{attempt}: {elapsed:.2f} s wall, {cpu:.1f} s CPU, peak RSS "
                    f"{peak / 2**20:.0f} MiB,"
                    f" load average {loads[-1]:.2f}  ({summary})"
                )
            requests = len(api.requests)
        names = ("report.md", "report.html", *CSV_FILES)
        missing = [
            f"{folder.name}/{name}"
            for folder in results.iterdir()
            if folder.is_dir() and not folder.name.startswith(".")
            for name in names
            if not (folder / name).is_file()
        ]
        if args.experiments > 1:  # the summary compares experiments: none for one
            missing += [n for n in ("summary.md", "summary.json") if not (results / n).is_file()]
        figures.update(aggregates_in_process(results))
        figures.update(
            regenerate_wall_s=[round(t, 3) for t in times],
            regenerate_median_s=round(statistics.median(times), 3),
            regenerate_cpu_s=[round(c, 2) for c in cpus],
            peak_rss_mib=[round(p / 2**20) for p in peaks],
            load_average_1min=[round(load, 2) for load in loads],
            cpus=os.cpu_count(),
            requests=requests,
            missing_files=missing,
        )
        print(
            f"median {statistics.median(times):.2f} s wall, peak RSS {max(peaks) / 2**20:.0f} MiB"
            f" (targets 10 s, 1024 MiB); requests {requests}; missing files {missing or 'none'}"
        )
        if requests or missing:
            raise SystemExit("regenerate asked the API or left files out")
        return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50, help="runs per sub-test (20 sub-tests)")
    parser.add_argument("--repeat", type=int, default=3, help="regenerate sessions to time")
    parser.add_argument("--json", type=Path, help="write the figures to this file")
    parser.add_argument("--tree", action="store_true", help="the 10,000-run acceptance tree")
    parser.add_argument("--experiments", type=int, default=5, help="with --tree")
    args = parser.parse_args()
    if args.tree:
        if args.runs == 50:
            args.runs = 100  # 5 experiments x 20 sub-tests x 100 runs = 10,000
        figures = tree_benchmark(args)
        if args.json:
            args.json.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
        return

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
