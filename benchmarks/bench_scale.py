"""A study at scale (issue 14): throughput under xdist, and collecting 50,000 runs.

throughput: 64 runs of the shipped test-001 (T0, 4 sub-tests x 16 runs, run-major order)
with an agent that only sleeps (`--agent command --agent-command 'sleep 2'`, no LLM judge),
once on `-n 1` and once on `-n 8`, each in a fresh subprocess (pytest start-up and worker
start-up included). Target: `-n 8` at least 6x faster. The machine's load average is
printed before and after: other work on it slows the harness part of each run (git,
workspace, checks), which is what keeps the speed-up under 8.

What `-n 8` is made of on 2 cores (timestamps from a plugin, 2026-11): the last worker
starts its first run ~3.7 s after launch (eight workers importing pytest, its plugins and
ours at once, ~0.7 s of CPU each); each worker then runs its 8 runs at ~2.18 s each, as
`-n 1` does, because workers start as they come up (scheduler.py) instead of in lockstep
(~2.45 s a round); the session ends ~0.5 s after the last run (workers exit with their heap
frozen, gc_freeze.py; ~1.4 s before).

collect: `--collect-only -q` of test-001 with `--runs 2500` (20 sub-tests over its tiers,
50,000 items). Target: at most 5 s and 500 MB peak memory (the process's max RSS, from
wait4).

    python benchmarks/bench_scale.py [throughput|collect|all] [--json out.json]
        [--without-plugin NAME ...]  (throughput without plugins pytest-scylla does not need)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
EXPERIMENT = ROOT / "experiments" / "test-001"


def timed(command: list[str], cwd: Path) -> tuple[float, int, str, float]:
    """(wall seconds, peak RSS in MB, output tail, CPU seconds of the whole process tree:
    pytest, its xdist workers, and everything they ran) of one subprocess."""
    started = time.perf_counter()
    process = subprocess.Popen(
        command, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    assert process.stdout is not None
    output = process.stdout.read()
    _pid, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    # 1: runs failed (an agent that only sleeps scores 0); the session itself completed.
    if process.returncode not in (0, 1):
        raise SystemExit(f"{' '.join(command)} failed:\n{output[-3000:]}")
    cpu = usage.ru_utime + usage.ru_stime
    return elapsed, usage.ru_maxrss // 1024, output.strip().splitlines()[-1], cpu


def throughput(workers: list[int], without: list[str]) -> dict[str, Any]:
    """`without`: pytest plugins to leave out (`-p no:NAME`), to see what other plugins
    installed here cost: each xdist worker loads every plugin of the environment."""
    figures: dict[str, Any] = {"load_before": os.getloadavg(), "without_plugins": without}
    for count in workers:
        with tempfile.TemporaryDirectory(prefix="bench-scale-") as scratch:
            command = [
                sys.executable,
                "-m",
                "pytest",
                str(EXPERIMENT),
                "--tiers",
                "T0",
                "--max-subtests",
                "4",
                "--runs",
                "16",
                "--agent",
                "command",
                "--agent-command",
                "sleep 2",
                "--judge-model",
                "none",
                "--results-dir",
                str(Path(scratch) / "results"),
                "-p",
                "no:cacheprovider",
                "-q",
                "-n",
                str(count),
                *[argument for name in without for argument in ("-p", f"no:{name}")],
            ]
            elapsed, _rss, tail, cpu = timed(command, ROOT)
        figures[f"n{count}_s"] = round(elapsed, 1)
        figures[f"n{count}_cpu_s"] = round(cpu, 1)
        # CPU beyond what two cores give in the sleeping part (16 s at -n 8) is what the
        # harness adds to the wall time.
        print(
            f"-n {count}: 64 runs in {elapsed:.1f} s, {cpu:.1f} s CPU in all ({tail})", flush=True
        )
    figures["load_after"] = os.getloadavg()
    if len(workers) == 2:
        speedup = figures[f"n{workers[0]}_s"] / figures[f"n{workers[1]}_s"]
        figures["speedup"] = round(speedup, 2)
        print(f"speed-up -n {workers[1]} over -n {workers[0]}: {speedup:.2f}x (target >= 6x)")
    print(f"load average before {figures['load_before']}, after {figures['load_after']}")
    if without:
        print(f"left out the installed pytest plugins: {', '.join(without)}")
    return figures


def collect(runs: int = 2500) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as scratch:
        command = [
            sys.executable,
            "-m",
            "pytest",
            str(EXPERIMENT),
            "--runs",
            str(runs),
            "--agent",
            "oracle",
            "--judge-model",
            "none",
            "--results-dir",
            str(Path(scratch) / "results"),
            "--collect-only",
            "-q",
            "-p",
            "no:cacheprovider",
        ]
        elapsed, rss, tail, _cpu = timed(command, ROOT)
    print(f"collect: {tail}; {elapsed:.2f} s wall, peak RSS {rss} MB (targets 5 s, 500 MB)")
    return {"collect_s": round(elapsed, 2), "collect_peak_mb": rss, "summary": tail}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", nargs="?", default="all", choices=["throughput", "collect", "all"])
    parser.add_argument("--workers", type=int, nargs=2, default=[1, 8])
    parser.add_argument(
        "--without-plugin",
        action="append",
        default=[],
        metavar="NAME",
        help="throughput without this installed pytest plugin (e.g. hypothesispytest)",
    )
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    figures: dict[str, Any] = {}
    if args.what in ("collect", "all"):
        figures.update(collect())
    if args.what in ("throughput", "all"):
        figures.update(throughput(args.workers, args.without_plugin))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
