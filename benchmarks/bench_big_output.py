"""Harness memory with a 200 MB file left by the agent (issue 10): peak RSS and diff size.

Run: `python benchmarks/bench_big_output.py [--size-mb 200]`. Prepares a run's workspace of
experiments/test-001 as the runner does, writes a text file of that size into it (as an
agent would), then times the harness's after-agent step: the change summary, redacted and
written as `workspace.diff`. Prints one JSON line: the harness's own peak RSS, the peak RSS
of its child processes (git), the diff's size and the wall time of the step.

The same script measures the code before issue 10 (`summarize_changes(workspace)`, git run
on the workspace): point PYTHONPATH at a checkout of it, e.g.
`git archive 84c0534 | tar -x -C /tmp/old && PYTHONPATH=/tmp/old python benchmarks/...`.
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
from pathlib import Path

from pytest_scylla import workspace as workspace_module
from pytest_scylla.redact import Redactor
from pytest_scylla.spec.load_experiment import load_experiment
from pytest_scylla.workspace import SourceCache, clone_workspace, materialize

ROOT = Path(__file__).resolve().parents[1]
EXPERIMENT = ROOT / "experiments" / "test-001" / "test.yaml"
LINE = b"a line of agent output that goes on for a while, number %09d\n"


def write_big_file(path: Path, size: int) -> None:
    with open(path, "wb") as handle:
        written = number = 0
        while written < size:
            chunk = b"".join(LINE % (number + i) for i in range(10_000))
            handle.write(chunk)
            written += len(chunk)
            number += 10_000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=200)
    options = parser.parse_args()
    new_code = hasattr(workspace_module, "prepare_harness_repository")
    experiment = load_experiment(EXPERIMENT)
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        start = SourceCache(tmp / "cache").repository(experiment)
        work = tmp / "run"
        workspace = work / "workspace"
        clone_workspace(start.repository, start.commit, workspace)
        subtest = experiment.catalogue.subtests("T0")[0]
        materialize(workspace, subtest, experiment.catalogue, start_date=start.date)
        if new_code:
            from pytest_scylla.harness_git import summarize_changes
            from pytest_scylla.workspace import prepare_harness_repository

            harness = prepare_harness_repository(workspace, start.repository, work)
        write_big_file(workspace / "agent-output.log", options.size_mb << 20)
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        started = time.perf_counter()
        if new_code:
            changes = summarize_changes(workspace, harness)
        else:
            from pytest_scylla.workspace import summarize_changes as old_summarize

            changes = old_summarize(workspace)  # type: ignore[call-arg]
        diff_file = tmp / "workspace.diff"
        diff_file.write_text(Redactor(["not-a-real-secret"])(changes.diff))
        elapsed = time.perf_counter() - started
    print(
        json.dumps(
            {
                "code": "issue-10" if new_code else "before issue 10",
                "file_mb": options.size_mb,
                "harness_peak_rss_mb": round(
                    resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1
                ),
                "harness_rss_before_step_mb": round(rss_before / 1024, 1),
                # The largest child (git) of the whole script, cache build included.
                "git_peak_rss_mb": round(
                    resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1
                ),
                "diff_bytes": diff_file_size(changes.diff),
                "step_s": round(elapsed, 2),
            }
        )
    )


def diff_file_size(diff: str) -> int:
    return len(diff.encode("utf-8", errors="surrogateescape"))


if __name__ == "__main__":
    main()
