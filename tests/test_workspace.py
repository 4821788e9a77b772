"""Workspaces: the cached source, per-run clones, materialized sub-tests and the change summary."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from pytest_scylla.spec.load_experiment import Experiment, load_experiment
from pytest_scylla.workspace import (
    MATERIALIZE_MESSAGE,
    SourceCache,
    StartingPoint,
    clone_workspace,
    git,
    materialize,
    summarize_changes,
)

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def experiment() -> Experiment:
    return load_experiment(REPO / "experiments" / "test-001" / "test.yaml")


def fresh_workspace(experiment: Experiment, cache: SourceCache, destination: Path) -> StartingPoint:
    start = cache.repository(experiment)
    clone_workspace(start.repository, start.commit, destination)
    return start


def test_runs_of_one_subtest_start_from_the_same_commit(
    experiment: Experiment, tmp_path: Path
) -> None:
    cache = SourceCache(tmp_path / "cache")
    subtests = {subtest.id: subtest for subtest in experiment.catalogue.subtests("T0")}
    heads = {}
    for name, subtest_id in (("a", "05-full"), ("b", "05-full"), ("c", "03-core")):
        workspace = tmp_path / name
        start = fresh_workspace(experiment, cache, workspace)
        manifest = materialize(
            workspace, subtests[subtest_id], experiment.catalogue, start_date=start.date
        )
        assert manifest.files, "the sub-test writes CLAUDE.md"
        heads[name] = git(["rev-parse", "HEAD"], workspace).strip()
        assert git(["rev-parse", "HEAD^"], workspace).strip() == start.commit
        # Same date as the starting commit: history reads in order.
        assert git(["log", "-2", "--format=%cI"], workspace).split() == [start.date] * 2
        assert git(["log", "-1", "--format=%s"], workspace).strip() == MATERIALIZE_MESSAGE
    assert heads["a"] == heads["b"]
    assert heads["a"] != heads["c"]


def test_source_commit_is_resolved_once_per_process(
    experiment: Experiment, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = SourceCache(tmp_path / "cache")
    first = cache.repository(experiment)
    calls: list[list[str]] = []
    monkeypatch.setattr(
        "pytest_scylla.workspace.git", lambda args, cwd, **_: calls.append(args) or ""
    )
    assert cache.repository(experiment) == first
    assert calls == []


def test_change_summary_matches_plain_git(experiment: Experiment, tmp_path: Path) -> None:
    workspace = tmp_path / "ws"
    fresh_workspace(experiment, SourceCache(tmp_path / "cache"), workspace)
    (workspace / "README.md").write_text("first line\nsecond line\n")
    (workspace / "with space.txt").write_text("one\ntwo\nthree\n")
    (workspace / "odd\nname.txt").write_text("x\n")
    (workspace / "blob.bin").write_bytes(b"\x00\x01\x02")
    (workspace / "empty.txt").write_text("")

    summary = summarize_changes(workspace)

    plain_diff = subprocess.run(
        ["git", "diff", "--no-color", "--no-ext-diff", "HEAD"],
        cwd=workspace,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert summary.diff == plain_diff
    assert summary.diff.startswith("diff --git")
    assert summary.files_changed == 5
    readme_before = len(
        (experiment.source_dir / "README.md").read_text().splitlines()  # type: ignore[operator]
    )
    assert summary.insertions == 2 + 3 + 1  # binary files count no lines
    assert summary.deletions == readme_before
    assert {"with space.txt", "blob.bin", "empty.txt", "README.md"} <= set(summary.files)
    assert any(name.startswith('"odd') for name in summary.files)


def test_change_summary_of_an_untouched_workspace_is_empty(
    experiment: Experiment, tmp_path: Path
) -> None:
    workspace = tmp_path / "ws"
    fresh_workspace(experiment, SourceCache(tmp_path / "cache"), workspace)
    summary = summarize_changes(workspace)
    assert (summary.diff, summary.files_changed, summary.insertions, summary.deletions) == (
        "",
        0,
        0,
        0,
    )
    assert "README.md" in summary.files
