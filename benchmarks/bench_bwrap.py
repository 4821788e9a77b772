"""What bubblewrap costs one local process: ``LocalSandbox.run`` of ``true`` and of a
Python check, plain against isolated, with and without output streaming (a redactor).
Also a run's checks (experiments/test-001: the after-check and the rubric commands) one
process each against one process for all (``judges/check_batch.py``).
Run: ``python benchmarks/bench_bwrap.py`` (issue 10's target: bubblewrap adds <= 20 ms per
run; bench_harness.py's bwrap_overhead measures the same per item of a nop session).

Kinds alternate inside each round, so the load of a shared machine hits both alike.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

from pytest_scylla.judges.checks import run_check, run_checks
from pytest_scylla.redact import Redactor
from pytest_scylla.sandbox.base import RunDirs
from pytest_scylla.sandbox.local import Isolation, LocalSandbox, LocalSandboxFactory
from pytest_scylla.spec.experiment import CheckCommand
from pytest_scylla.spec.load_experiment import load_experiment

EXPERIMENT = Path(__file__).resolve().parents[1] / "experiments" / "test-001"

ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8"}
COMMANDS = {
    "true": ["true"],
    "python -c pass": [sys.executable, "-c", "pass"],
}


def _open(root: Path, isolation: Isolation) -> LocalSandbox:
    dirs = RunDirs(root / isolation / "ws", root / isolation / "home", root / isolation / "in")
    return LocalSandboxFactory(isolation=isolation).open(dirs, {})


def _once(sandbox: LocalSandbox, argv: list[str], out: Path, redactor: Redactor | None) -> float:
    started = time.perf_counter()
    outcome = sandbox.run(
        argv,
        env=ENV,
        timeout_s=30,
        stdout_path=out,
        stderr_path=out.with_suffix(".err"),
        redactor=redactor,
    )
    assert outcome.exit_code == 0, out.with_suffix(".err").read_text()
    return time.perf_counter() - started


def main(rounds: int = 40) -> None:
    with tempfile.TemporaryDirectory(prefix="scylla-bench-bwrap-") as scratch:
        root = Path(scratch)
        sandboxes = {kind: _open(root, kind) for kind in ("none", "bwrap")}
        assert sandboxes["bwrap"].isolated, "bubblewrap is not usable here"
        for sandbox in sandboxes.values():  # warm caches (pages, dentries) for both alike
            for _ in range(5):
                _once(sandbox, ["true"], root / "out", None)
        for name, argv in COMMANDS.items():
            for redactor in (None, Redactor(["sk-ant-bench-secret-0000"])):
                times: dict[str, list[float]] = {kind: [] for kind in sandboxes}
                for _ in range(rounds):
                    for kind, sandbox in sandboxes.items():
                        times[kind].append(_once(sandbox, argv, root / "out", redactor))
                # The minimum is the cost without the machine's noise; the median has it.
                plain, isolated = (min(times[k]) * 1000 for k in sandboxes)
                plain_median, isolated_median = (
                    statistics.median(times[k]) * 1000 for k in sandboxes
                )
                streaming = "streamed+redacted" if redactor else "to files"
                print(
                    f"{name:16} {streaming:18} min: plain {plain:6.1f} ms, bubblewrap "
                    f"{isolated:6.1f} ms ({isolated - plain:+.1f} ms, target <= +20 ms); "
                    f"median: {plain_median:6.1f} / {isolated_median:6.1f} ms"
                )


def _test_001_checks() -> list[CheckCommand]:
    experiment = load_experiment(EXPERIMENT / "test.yaml")
    rubric = [
        CheckCommand(
            name=item.id, command=item.command, timeout_seconds=item.command_timeout_seconds
        )
        for item in experiment.normalized_rubric.items()
        if item.command is not None
    ]
    return [*experiment.spec.checks, *rubric]


def _checks_once(sandbox: LocalSandbox, checks: list[CheckCommand], batch: bool) -> float:
    env = {**ENV, "HOME": sandbox.paths.home, "TMPDIR": f"{sandbox.paths.home}/tmp"}
    redactor = Redactor([])
    started = time.perf_counter()
    if batch:
        run_checks(sandbox, checks, env=env, redactor=redactor)
    else:
        for check in checks:
            run_check(
                sandbox,
                check.name,
                check.command,
                env=env,
                timeout_s=check.timeout_seconds,
                redactor=redactor,
            )
    return time.perf_counter() - started


def checks_of_a_run(rounds: int = 15) -> None:
    checks = _test_001_checks()
    with tempfile.TemporaryDirectory(prefix="scylla-bench-checks-") as scratch:
        root = Path(scratch)
        sandboxes = {kind: _open(root, kind) for kind in ("none", "bwrap")}
        times: dict[tuple[str, bool], list[float]] = {
            (kind, batch): [] for kind in sandboxes for batch in (False, True)
        }
        for _ in range(rounds):
            for (kind, batch), spent in times.items():
                spent.append(_checks_once(sandboxes[kind], checks, batch))
    for batch in (False, True):
        plain, isolated = (statistics.median(times[(k, batch)]) * 1000 for k in sandboxes)
        how = "one process for all" if batch else "one process each"
        print(
            f"test-001's {len(checks)} checks, {how:19} median: plain {plain:6.1f} ms, "
            f"bubblewrap {isolated:6.1f} ms ({isolated - plain:+.1f} ms per run)"
        )


if __name__ == "__main__":
    main()
    checks_of_a_run()
