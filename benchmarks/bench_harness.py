"""Harness overhead: time per item with the `nop` agent on the local sandbox, and the time to
collect 10,000 items. Run: `python benchmarks/bench_harness.py` (targets: <= 100 ms per item,
<= 3 s to collect 10,000 items).

Per-item overhead = (wall time of a nop session - wall time of collecting the same items) /
items: everything the harness does for a run (workspace clone, sub-test files, checks, record,
aggregates) except starting pytest.

`python benchmarks/bench_harness.py phases` shows where a run's CPU goes instead: an
in-process session of the throughput benchmark's kind (test-001 T0, `--agent command`, no
LLM judge) with each phase wrapped, counting this process's CPU and its reaped children's
(getrusage), so git, bubblewrap and the check runner count too; also the CPU a process
spends before its first run (interpreter, plugins, collection), which every xdist worker pays.
"""

from __future__ import annotations

import functools
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Generator
from pathlib import Path
from typing import Any

import pytest

from pytest_scylla.session import LOCAL_ISOLATION_ENV

ROOT = Path(__file__).resolve().parents[1]
EXPERIMENT = ROOT / "experiments" / "test-001"


def timed(argv: list[str], env: dict[str, str] | None = None) -> tuple[float, str]:
    started = time.perf_counter()
    completed = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, env=env)
    elapsed = time.perf_counter() - started
    if completed.returncode not in (0, 1):
        raise SystemExit(
            f"{' '.join(argv)} failed:\n{completed.stdout[-3000:]}\n{completed.stderr[-3000:]}"
        )
    return elapsed, completed.stdout


def _collect_argv(runs: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "pytest",
        str(EXPERIMENT),
        "--collect-only",
        "-q",
        "--runs",
        str(runs),
        "-p",
        "no:cacheprovider",
    ]


def collection(items_wanted: int = 10_000) -> None:
    _, listing = timed(_collect_argv(1))
    per_run = int(re.search(r"(\d+) tests? collected", listing).group(1))  # type: ignore[union-attr]
    runs = -(-items_wanted // per_run)
    walls, inner = [], []
    for _ in range(3):
        wall, output = timed(_collect_argv(runs))
        match = re.search(r"(\d+) tests? collected in ([0-9.]+)s", output)
        assert match is not None, output[-500:]
        walls.append(wall)
        inner.append(float(match.group(2)))
    print(
        f"collection: {int(match.group(1))} items; pytest's collection time median {statistics.median(inner):.2f} s, whole command median {statistics.median(walls):.2f} s (target <= 3 s)"
    )


def _session(runs: int, results: Path, isolation: str | None = None) -> tuple[int, float]:
    """A nop session; isolation (auto, bwrap, none) picks the local sandbox's kind."""
    argv = [
        sys.executable,
        "-m",
        "pytest",
        str(EXPERIMENT),
        "--agent",
        "nop",
        "--judge-model",
        "none",
        "--tiers",
        "T0",
        "--runs",
        str(runs),
        "-p",
        "no:cacheprovider",
        "-q",
        "--results-dir",
        str(results),
    ]
    env = None if isolation is None else {**os.environ, LOCAL_ISOLATION_ENV: isolation}
    wall, output = timed(argv, env)
    items = sum(int(n) for n in re.findall(r"(\d+) (?:passed|failed)", output))
    return items, wall


def _where_time_goes(results: Path) -> str:
    """Mean phase durations, from the run records, and how many runs reused a baseline."""
    records = [json.loads(path.read_text()) for path in results.rglob("run_result.json")]
    reused = sum(record["checks"]["baseline_from"] is not None for record in records)
    phases = ", ".join(
        f"{phase} {statistics.mean(record['durations'][f'{phase}_s'] for record in records) * 1000:.0f} ms"
        for phase in ("workspace", "checks")
    )
    return f"  of which, mean per run: {phases}; baseline checks reused by {reused} of {len(records)} runs"


def nop_overhead(small: int = 2, large: int = 8) -> None:
    """Two session sizes, so fixed costs (interpreter, imports, aggregates) cancel out."""
    with tempfile.TemporaryDirectory(prefix="scylla-bench-") as scratch:
        small_items, small_wall = _session(small, Path(scratch) / "small")
        large_items, large_wall = _session(large, Path(scratch) / "large")
        per_item = (large_wall - small_wall) / (large_items - small_items)
        breakdown = _where_time_goes(Path(scratch) / "large")
        _, resumed_small = _session(small, Path(scratch) / "small")
        _, resumed_large = _session(large, Path(scratch) / "large")
        per_resumed = (resumed_large - resumed_small) / (large_items - small_items)
    print(
        f"nop agent, local sandbox: {small_items} items {small_wall:.2f} s, {large_items} items {large_wall:.2f} s"
    )
    print(f"harness overhead per item: {per_item * 1000:.0f} ms (target <= 100 ms)")
    print(breakdown)
    # Resuming costs too little per item to stand out from start-up noise: show the walls too.
    print(
        f"resume from disk (no agent, no checks): {small_items} items {resumed_small:.2f} s, "
        f"{large_items} items {resumed_large:.2f} s, {per_resumed * 1000:.1f} ms per item"
    )


def _mean_checks_s(results: Path) -> float:
    records = [json.loads(path.read_text()) for path in results.rglob("run_result.json")]
    return statistics.mean(record["durations"]["checks_s"] for record in records)


def bwrap_overhead(small: int = 2, large: int = 8, rounds: int = 5) -> None:
    """Per-item overhead of the bubblewrap local sandbox against the plain one (target: at
    most 20 ms more per run). Sessions alternate, so machine load hits both alike; the
    checks' own time per run (from the records) shows the sandbox's part without pytest's
    noise."""
    per_item: dict[str, list[float]] = {"none": [], "bwrap": []}
    checks_s: dict[str, list[float]] = {"none": [], "bwrap": []}
    for _ in range(rounds):
        for isolation in per_item:
            with tempfile.TemporaryDirectory(prefix="scylla-bench-") as scratch:
                small_items, small_wall = _session(small, Path(scratch) / "s", isolation)
                large_items, large_wall = _session(large, Path(scratch) / "l", isolation)
                checks_s[isolation].append(_mean_checks_s(Path(scratch) / "l"))
            per_item[isolation].append((large_wall - small_wall) / (large_items - small_items))
    plain, isolated = (statistics.median(per_item[kind]) for kind in ("none", "bwrap"))
    spread = ", ".join(
        f"{kind} {min(per_item[kind]) * 1000:.0f}-{max(per_item[kind]) * 1000:.0f} ms"
        for kind in per_item
    )
    print(
        f"nop agent per item, median of {rounds}: plain {plain * 1000:.0f} ms, "
        f"bubblewrap {isolated * 1000:.0f} ms: {(isolated - plain) * 1000:+.0f} ms per run "
        f"(target <= +20 ms; range {spread})"
    )
    plain_checks, isolated_checks = (
        statistics.median(checks_s[kind]) for kind in ("none", "bwrap")
    )
    print(
        f"  checks per run (records' checks_s, median of means): plain "
        f"{plain_checks * 1000:.0f} ms, bubblewrap {isolated_checks * 1000:.0f} ms "
        f"({(isolated_checks - plain_checks) * 1000:+.0f} ms)"
    )


def cpu_now() -> float:
    """CPU seconds of this process and of every child it has reaped."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


class PhaseClock:
    """A pytest plugin that times wrapped functions and each item, CPU and wall."""

    def __init__(self) -> None:
        self.cpu: dict[str, list[float]] = defaultdict(list)
        self.wall: dict[str, list[float]] = defaultdict(list)
        self.marks: dict[str, float] = {}

    def wrap(self, owner: Any, name: str, label: str) -> None:
        found = vars(owner).get(name) if isinstance(owner, type) else None
        static = isinstance(found, staticmethod)
        original = getattr(owner, name)

        @functools.wraps(original)
        def timed(*args: Any, **kwargs: Any) -> Any:
            cpu, wall = cpu_now(), time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.cpu[label].append(cpu_now() - cpu)
                self.wall[label].append(time.perf_counter() - wall)

        setattr(owner, name, staticmethod(timed) if static else timed)

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionstart(self) -> None:
        self.marks["session start"] = cpu_now()

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_protocol(self, item: pytest.Item) -> Generator[None, None, None]:
        self.marks.setdefault("first run", cpu_now())
        cpu, wall = cpu_now(), time.perf_counter()
        yield
        self.cpu["whole run"].append(cpu_now() - cpu)
        self.wall["whole run"].append(time.perf_counter() - wall)


def _wrap_phases(clock: PhaseClock) -> None:
    from pytest_scylla import plugin, redact_reports
    from pytest_scylla.agents.command import CommandAgent
    from pytest_scylla.run import agent_phase, executor
    from pytest_scylla.sandbox.local import LocalSandboxFactory
    from pytest_scylla.workspace import SourceCache

    for name, label in [
        ("remove_tree", "remove work folder"),
        ("clone_workspace", "clone"),
        ("prepare_harness_repository", "snapshot (harness repo)"),
        ("run_pipeline", "baseline checks"),
        ("run_after_checks", "after checks + rubric"),
        ("summarize_changes", "diff"),
        ("atomic_write_json", "agent-phase files"),
        ("atomic_write_text", "agent-phase files"),
        ("agent_credentials", "credentials"),
    ]:
        clock.wrap(agent_phase, name, label)
    clock.wrap(SourceCache, "start_workspace", "clone + sub-test files")
    clock.wrap(LocalSandboxFactory, "open", "sandbox open")
    clock.wrap(CommandAgent, "run", "agent (incl. its sandbox start)")
    clock.wrap(executor, "run_judge_phase", "judge phase (scoring)")
    clock.wrap(executor.RunExecutor, "_save", "record writes")
    clock.wrap(executor, "run_agent_phase", "agent phase in all")
    clock.wrap(plugin, "redact_report", "report redaction")
    del redact_reports


def phases(runs: int = 8, agent_command: str = "sleep 0.2") -> None:
    """One in-process session: CPU per phase of a run, and before the first run."""
    started = cpu_now()
    clock = PhaseClock()
    _wrap_phases(clock)
    with tempfile.TemporaryDirectory(prefix="scylla-bench-") as scratch:
        results = Path(scratch) / "results"
        argv = [
            str(EXPERIMENT),
            "--tiers",
            "T0",
            "--max-subtests",
            "4",
            "--runs",
            str(runs),
            "--agent",
            "command",
            "--agent-command",
            agent_command,
            "--judge-model",
            "none",
            "--results-dir",
            str(results),
            "-p",
            "no:cacheprovider",
            "-q",
        ]
        pytest.main(argv, plugins=[clock])
        from pytest_scylla.artifacts import pack_run

        run_dirs = sorted(path.parent for path in results.rglob("run_result.json"))
        clock.wrap(sys.modules["pytest_scylla.artifacts"], "pack_run", "pack (worker side)")
        packed = [sys.modules["pytest_scylla.artifacts"].pack_run(folder) for folder in run_dirs]
        del pack_run
        sizes = [len(p.payload) for p in packed if p is not None]
    marks = clock.marks
    print(
        f"before the first run: {(marks['session start'] - started) * 1000:.0f} ms CPU to "
        f"session start (plugins), {(marks['first run'] - marks['session start']) * 1000:.0f}"
        " ms more to the first run (collection, session set-up); plus the interpreter and "
        "the imports before this function"
    )
    items = len(clock.cpu["whole run"])
    print(f"{items} runs; CPU per run (median, first run apart where it differs), wall median:")
    for label in clock.cpu:
        cpus, walls = clock.cpu[label], clock.wall[label]
        per_run = sum(cpus) / items
        print(
            f"  {label:34s} {per_run * 1000:7.1f} ms/run  (calls {len(cpus)}, first "
            f"{cpus[0] * 1000:.1f} ms, median {statistics.median(cpus) * 1000:.1f} ms CPU, "
            f"{statistics.median(walls) * 1000:.1f} ms wall)"
        )
    print(f"  payload per run: median {statistics.median(sizes)} base64 bytes")


if __name__ == "__main__":
    if sys.argv[1:] == ["phases"]:
        phases()
    else:
        collection()
        nop_overhead()
        bwrap_overhead()
