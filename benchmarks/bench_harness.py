"""Harness overhead: time per item with the `nop` agent on the local sandbox, and the time to
collect 10,000 items. Run: `python benchmarks/bench_harness.py` (targets: <= 100 ms per item,
<= 3 s to collect 10,000 items).

Per-item overhead = (wall time of a nop session - wall time of collecting the same items) /
items: everything the harness does for a run (workspace clone, sub-test files, checks, record,
aggregates) except starting pytest.
"""

from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

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


if __name__ == "__main__":
    collection()
    nop_overhead()
    bwrap_overhead()
