"""Workspaces: the cached source, per-run clones, materialized sub-tests and the change summary."""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

import pytest
from experiment_factory import write_experiment

from pytest_scylla.gitignore import is_ignored, parse_ignore_file
from pytest_scylla.harness_git import (
    DiffLimits,
    HarnessRepository,
    WorkspaceError,
    summarize_changes,
)
from pytest_scylla.spec.load_experiment import Experiment, load_experiment
from pytest_scylla.workspace import (
    DIGEST_SUFFIX,
    MATERIALIZE_MESSAGE,
    SourceCache,
    StartingPoint,
    clone_workspace,
    git,
    materialize,
    prepare_harness_repository,
)

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def experiment() -> Experiment:
    return load_experiment(REPO / "experiments" / "test-001" / "test.yaml")


def fresh_workspace(experiment: Experiment, cache: SourceCache, destination: Path) -> StartingPoint:
    start = cache.repository(experiment)
    clone_workspace(start.repository, start.commit, destination)
    return start


def harness_for(
    experiment: Experiment, tmp_path: Path, name: str = "run"
) -> tuple[Path, HarnessRepository]:
    """A workspace (`<tmp>/<name>/workspace`) and its private repository, as a run has them."""
    start = SourceCache(tmp_path / "cache").repository(experiment)
    workspace = tmp_path / name / "workspace"
    clone_workspace(start.repository, start.commit, workspace)
    return workspace, prepare_harness_repository(workspace, start.repository, tmp_path / name)


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
    workspace, harness = harness_for(experiment, tmp_path)
    (workspace / "README.md").write_text("first line\nsecond line\n")
    (workspace / "with space.txt").write_text("one\ntwo\nthree\n")
    (workspace / "odd\nname.txt").write_text("x\n")
    (workspace / "blob.bin").write_bytes(b"\x00\x01\x02")
    (workspace / "empty.txt").write_text("")
    (workspace / ".gitignore").write_text("*.log\nbuild/\n")
    (workspace / "debug.log").write_text("ignored\n")
    (workspace / "build").mkdir()
    (workspace / "build" / "out.o").write_text("ignored\n")
    os.symlink("README.md", workspace / "link")

    summary = summarize_changes(workspace, harness)

    # Plain git, on the same files with the agent's .git: what the judge saw before.
    subprocess.run(["git", "add", "-A"], cwd=workspace, check=True)
    plain_diff = subprocess.run(
        ["git", "diff", "--no-color", "--no-ext-diff", "--cached", "HEAD"],
        cwd=workspace,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    plain_files = subprocess.run(
        ["git", "ls-files"], cwd=workspace, capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert summary.diff == plain_diff
    assert summary.diff.startswith("diff --git")
    assert summary.files == sorted(plain_files)
    assert summary.files_changed == 7
    readme_before = len(
        (experiment.source_dir / "README.md").read_text().splitlines()  # type: ignore[operator]
    )
    assert summary.insertions == 2 + 3 + 1 + 2 + 1  # binary files count no lines
    assert summary.deletions == readme_before
    assert {"with space.txt", "blob.bin", "empty.txt", "README.md", "link"} <= set(summary.files)
    assert any(name.startswith('"odd') for name in summary.files)
    assert "debug.log" not in summary.files and "build/out.o" not in summary.files
    assert summary.cut == [] and summary.notes == []


def test_change_summary_of_an_untouched_workspace_is_empty(
    experiment: Experiment, tmp_path: Path
) -> None:
    workspace, harness = harness_for(experiment, tmp_path)
    summary = summarize_changes(workspace, harness)
    assert (summary.diff, summary.files_changed, summary.insertions, summary.deletions) == (
        "",
        0,
        0,
        0,
    )
    assert "README.md" in summary.files


def test_change_summary_sees_deletions_mode_changes_and_files_replaced_by_folders(
    tmp_path: Path,
) -> None:
    directory = write_experiment(tmp_path, "exp-files")
    (directory / "repo" / "tool.sh").write_text("echo hi\n")
    (directory / "repo" / "gone.txt").write_text("bye\n")
    workspace, harness = harness_for(load_experiment(directory / "test.yaml"), tmp_path)
    (workspace / "tool.sh").chmod(0o755)
    (workspace / "gone.txt").unlink()
    (workspace / "README.md").unlink()
    (workspace / "README.md").mkdir()
    (workspace / "README.md" / "inner.txt").write_text("inside\n")
    summary = summarize_changes(workspace, harness)
    assert "diff --git a/tool.sh b/tool.sh\nold mode 100644\nnew mode 100755" in summary.diff
    assert "diff --git a/gone.txt b/gone.txt\ndeleted file mode 100644" in summary.diff
    assert "+++ b/README.md/inner.txt" in summary.diff
    assert summary.files == ["README.md/inner.txt", "tool.sh"]
    assert (summary.files_changed, summary.insertions, summary.deletions) == (4, 1, 2)


def test_change_summary_caps_big_files_without_reading_them(
    experiment: Experiment, tmp_path: Path
) -> None:
    workspace, harness = harness_for(experiment, tmp_path)
    with open(workspace / "big.bin", "wb") as big:
        big.truncate(200 << 20)  # sparse: 200 MB written in no time
    (workspace / "README.md").write_bytes(b"x" * 3000)
    (workspace / "second.txt").write_bytes(b"y\n" * 1000)
    limits = DiffLimits(max_file_bytes=4096, max_total_bytes=4000, max_diff_bytes=1 << 20)

    summary = summarize_changes(workspace, harness, limits)

    assert [(cut.path, cut.size) for cut in summary.cut] == [
        ("big.bin", 200 << 20),
        ("second.txt", 2000),
    ]
    assert summary.diff.startswith(
        "# scylla: big.bin (209715200 bytes) not shown: over the 4096-byte limit per file\n"
        "# scylla: second.txt (2000 bytes) not shown: over the 4000-byte limit for all files shown\n"
    )
    assert "+[scylla: content not shown: 209715200 bytes" in summary.diff
    assert "+" + "x" * 3000 in summary.diff
    assert len(summary.diff) < 10_000
    assert {"big.bin", "second.txt"} <= set(summary.files)


def test_change_summary_cuts_a_long_diff_and_says_so(
    experiment: Experiment, tmp_path: Path
) -> None:
    workspace, harness = harness_for(experiment, tmp_path)
    for number in range(20):
        (workspace / f"file{number:02d}.txt").write_text("line\n" * 200)
    limits = DiffLimits(max_diff_bytes=2000)
    summary = summarize_changes(workspace, harness, limits)
    first, _, patch = summary.diff.partition("\n")
    assert first.startswith("# scylla: the diff is cut after 2000 of its ")
    assert len(patch) <= 2000
    assert summary.files_changed == 20 and summary.insertions == 20 * 200


def test_change_summary_leaves_out_fifos_and_never_reads_through_links(
    experiment: Experiment, tmp_path: Path
) -> None:
    workspace, harness = harness_for(experiment, tmp_path)
    secret = tmp_path / "host-secret.txt"
    secret.write_text("host secret\n")
    os.mkfifo(workspace / "pipe")
    os.symlink(secret, workspace / "notes.txt")
    (workspace / "README.md").unlink()
    os.symlink(secret, workspace / "README.md")  # a tracked file turned into a link
    os.mkfifo(workspace / ".gitignore")  # git itself would block opening it
    summary = summarize_changes(workspace, harness)
    assert "host secret" not in summary.diff
    assert f"+{secret}" in summary.diff
    assert "new file mode 120000" in summary.diff
    assert summary.notes == ["not files, left out: .gitignore, pipe"]
    assert "pipe" not in summary.files


# ------------------------------------------------------------------ ignore rules


IGNORE_RULES = [
    "*.pyc",
    "!keep.pyc",
    "build/",
    "/top.txt",
    "a/**/b",
    "**/deep",
    "docs/*.md",
    "x?y",
    "[abc].txt",
    "[!a-c]z.txt",
    "foo/**",
    "ab**cd",
    "*.[oa]",
    "\\#hash",
    "trail\\ ",
    "spaces   ",
    "[[:digit:]]n",
    "lib/*/x",
    "n[/]m",
    "c[a-]t",
    "# a comment",
    "unclosed[",
]
IGNORE_PATHS = [
    "x.pyc", "keep.pyc", "d/keep.pyc", "build/o", "d/build/o", "build", "top.txt", "d/top.txt",
    "a/b", "a/q/b", "a/q/r/b", "deep", "q/deep", "q/w/deep/f", "docs/r.md", "docs/s/r.md",
    "xzy", "x/y", "a.txt", "d.txt", "dz.txt", "az.txt", "foo/x", "foo/x/y", "foo", "abcd",
    "ab/cd", "abXcd", "m.o", "m.a", "m.c", "#hash", "trail ", "spaces", "3n", "lib/k/x",
    "lib/k/l/x", "n/m", "cat", "c-t", "cbt", "unclosed[",
]  # fmt: skip


def test_ignore_rules_agree_with_git_check_ignore() -> None:
    with tempfile.TemporaryDirectory() as folder:
        subprocess.run(["git", "init", "-q", folder], check=True)
        Path(folder, ".gitignore").write_text("\n".join(IGNORE_RULES) + "\n")
        answer = subprocess.run(
            ["git", "-C", folder, "check-ignore", "--no-index", "--stdin", "-z", "-n", "-v"],
            input="\0".join(IGNORE_PATHS) + "\0",
            capture_output=True,
            text=True,
        ).stdout.split("\0")
    by_git = {
        answer[i + 3]: bool(answer[i + 2]) and not answer[i + 2].startswith("!")
        for i in range(0, len(answer) - 1, 4)
    }
    patterns = parse_ignore_file("\n".join(IGNORE_RULES) + "\n", "")

    def ours(path: str) -> bool:
        parts = path.split("/")
        parents = ("/".join(parts[:n]) for n in range(1, len(parts)))
        return any(is_ignored(patterns, parent, is_dir=True) for parent in parents) or (
            is_ignored(patterns, path, is_dir=False)
        )

    assert {path: ours(path) for path in IGNORE_PATHS} == by_git
    assert sum(by_git.values()) > 20  # the rules do ignore things


def test_a_deeper_gitignore_wins_and_an_ignored_folder_stays_ignored(
    experiment: Experiment, tmp_path: Path
) -> None:
    workspace, harness = harness_for(experiment, tmp_path)
    (workspace / ".gitignore").write_text("*.tmp\nout/\n")
    (workspace / "sub").mkdir()
    (workspace / "sub" / ".gitignore").write_text("!keep.tmp\n")
    (workspace / "sub" / "keep.tmp").write_text("kept\n")
    (workspace / "sub" / "drop.tmp").write_text("dropped\n")
    (workspace / "out").mkdir()
    (workspace / "out" / ".gitignore").write_text("!*\n")  # too late: out/ is ignored
    (workspace / "out" / "x").write_text("x\n")
    summary = summarize_changes(workspace, harness)
    subprocess.run(["git", "add", "-A"], cwd=workspace, check=True)
    plain = subprocess.run(
        ["git", "ls-files"], cwd=workspace, capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert summary.files == sorted(plain)
    assert "sub/keep.tmp" in summary.files and "sub/drop.tmp" not in summary.files


# ------------------------------------------------------------------ the cache


def _inodes(root: Path) -> set[tuple[int, int]]:
    return {
        (path.lstat().st_dev, path.lstat().st_ino) for path in root.rglob("*") if path.is_file()
    }


def test_a_run_shares_no_inode_with_the_cache(experiment: Experiment, tmp_path: Path) -> None:
    start = SourceCache(tmp_path / "cache").repository(experiment)
    workspace, harness = harness_for(experiment, tmp_path)
    assert _inodes(start.repository) and _inodes(workspace)
    assert not _inodes(start.repository) & (_inodes(workspace) | _inodes(harness.git_dir))


@pytest.mark.parametrize("damage", ["garbage in the pack", "HEAD moved"])
def test_a_damaged_cache_is_detected_and_rebuilt(
    experiment: Experiment, tmp_path: Path, damage: str
) -> None:
    first = SourceCache(tmp_path / "cache").repository(experiment)
    git_dir = first.repository / ".git"
    if damage == "garbage in the pack":
        for pack in (git_dir / "objects" / "pack").glob("*.pack"):
            pack.chmod(0o644)
            pack.write_bytes(b"garbage" * 100)
    else:
        # A valid repository, a different starting state: only the digest can tell.
        git(["commit", "-q", "--allow-empty", "-m", "planted"], first.repository)
    again = SourceCache(tmp_path / "cache")  # another process: checks the cache once
    second = again.repository(experiment)
    assert second == first
    digest_file = first.repository.with_name(first.repository.name + DIGEST_SUFFIX)
    assert digest_file.is_file()
    workspace = tmp_path / "ws"
    clone_workspace(second.repository, second.commit, workspace)
    assert (workspace / "README.md").read_text() == (
        experiment.source_dir / "README.md"  # type: ignore[operator]
    ).read_text()
    assert git(["log", "--format=%s"], workspace).split("\n")[0] == "scylla: starting state"


def test_files_the_checkout_converted_are_not_changes(tmp_path: Path) -> None:
    directory = write_experiment(tmp_path, "exp-crlf")
    (directory / "repo" / ".gitattributes").write_text("*.txt text eol=crlf\n")
    (directory / "repo" / "notes.txt").write_text("one\ntwo\n")
    workspace, harness = harness_for(load_experiment(directory / "test.yaml"), tmp_path)
    assert (workspace / "notes.txt").read_bytes() == b"one\r\ntwo\r\n"
    # What a docker run does to every file: a new owner, a new ctime, the same bytes.
    for path in ("notes.txt", "README.md"):
        os.chown(workspace / path, 1000, 1000)
        os.chown(workspace / path, 0, 0)
    assert summarize_changes(workspace, harness).diff == ""
    (workspace / "notes.txt").write_bytes(b"one\r\ntwo\r\nthree\r\n")
    assert "+++ b/notes.txt" in summarize_changes(workspace, harness).diff


def test_a_symlink_planted_in_the_cache_is_never_followed_into_a_workspace(
    experiment: Experiment, tmp_path: Path
) -> None:
    """The attack: someone who can write the cache (and its digest) links an object file to
    a secret; a run's copy of the cache must neither follow the link nor copy it."""
    secret = tmp_path / "secret"
    secret.write_text("the host's secret\n")
    start = SourceCache(tmp_path / "cache").repository(experiment)
    (start.repository / ".git" / "objects" / "pack" / "planted.idx").symlink_to(secret)
    with pytest.raises(WorkspaceError, match="symlink in the source cache"):
        clone_workspace(start.repository, start.commit, tmp_path / "ws")
    planted = tmp_path / "ws" / ".git" / "objects" / "pack" / "planted.idx"
    assert not planted.exists() and not planted.is_symlink()


def test_a_starting_commit_is_listed_once_per_process(
    experiment: Experiment, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pytest_scylla.harness_git as harness_git

    first_workspace, first = harness_for(experiment, tmp_path, "one")
    calls: list[list[str]] = []
    real_run_git = harness_git.run_git

    def counting(git_dir: Path, args: list[str], **kwargs: object) -> str:
        calls.append(args)
        return real_run_git(git_dir, args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(harness_git, "run_git", counting)
    second_workspace, second = harness_for(experiment, tmp_path, "two")
    assert second.base_commit == first.base_commit and second.tracked == first.tracked
    assert not [args for args in calls if args[0] == "ls-tree"]
    (second_workspace / "README.md").write_text("changed\n")
    assert summarize_changes(second_workspace, second).files_changed == 1
    assert summarize_changes(first_workspace, first).files_changed == 0


def test_later_runs_of_a_subtest_get_its_commit_without_making_it_again(
    experiment: Experiment, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pytest_scylla.workspace as workspace_module

    cache = SourceCache(tmp_path / "cache")
    start = cache.repository(experiment)
    subtest = {s.id: s for s in experiment.catalogue.subtests("T0")}["05-full"]
    # The plain way: a clone, the files written, git add and git commit.
    plain = tmp_path / "plain"
    clone_workspace(start.repository, start.commit, plain)
    expected = materialize(plain, subtest, experiment.catalogue, start_date=start.date)
    calls: list[list[str]] = []
    real_git = workspace_module.git

    def counting(args: list[str], cwd: Path, **kwargs: object) -> str:
        calls.append(args)
        return real_git(args, cwd, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(workspace_module, "git", counting)
    first, second = tmp_path / "first", tmp_path / "second"
    assert cache.start_workspace(start, subtest, experiment.catalogue, first) == expected
    made = len(calls)
    assert cache.start_workspace(start, subtest, experiment.catalogue, second) == expected
    assert [args[0] for args in calls[made:]] == ["read-tree"]  # one git process
    for workspace in (first, second):
        assert real_git(["rev-parse", "HEAD"], workspace) == real_git(["rev-parse", "HEAD"], plain)
        assert real_git(["status", "--porcelain", "--untracked-files=all"], workspace) == ""
        real_git(["fsck", "--strict", "--no-dangling"], workspace)
        for entry in expected.files:
            assert (workspace / entry.path).read_bytes() == (plain / entry.path).read_bytes()
    # The second run's copy of the sub-test's objects is its own, like the rest of its clone.
    assert not _inodes(first / ".git") & _inodes(second / ".git")
