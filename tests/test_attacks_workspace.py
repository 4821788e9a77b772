"""Attacks on the harness through what the agent leaves in its workspace (issue 10).

* Runs cannot touch each other: an agent that overwrites its clone's objects (with garbage,
  or with valid objects of other content) changes nothing for a later run, because no run
  shares an inode with the source cache (on the old code the clone hard-linked it).
* A 200 MB file does not end up in `workspace.diff`: it is listed as cut, and the harness
  never reads it (its memory is measured in benchmarks/bench_big_output.py).
* `--scylla-keep-workspace` keeps a redacted copy: `env > env.txt` keeps no API key, a link
  to /etc/shadow stays a link, a FIFO is left out.
* A symlink out of a shipped repository is a collection error naming the link.

End to end through `--agent command`, with the local and the Docker sandbox (skipped with a
reason when no engine answers, a failure in CI), as in test_attacks_git.py.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from experiment_factory import write_experiment
from test_attacks_git import DO_THE_TASK, SANDBOXES, assert_graded, run_dirs, run_session

from pytest_scylla.kept_workspace import KEPT_MANIFEST_FILE, KeepLimits, keep_workspace
from pytest_scylla.redact import Redactor

# Run 1 ruins the objects of its clone; run 2 shows the README it started from.
POISON_GARBAGE = (
    "find .git/objects -type f -exec sh -c 'chmod u+w \"$1\"; printf garbage > \"$1\"' _ {} ';'"
)
# Valid zlib, valid object header, other content: git reads it without a complaint.
POISON_VALID = r"""python3 -c '
import os, subprocess, zlib
for line in subprocess.check_output(["git", "ls-tree", "-r", "HEAD"]).decode().splitlines():
    oid = line.split()[2]
    path = os.path.join(".git", "objects", oid[:2], oid[2:])
    if os.path.exists(path):
        body = b"planted by run 1\n"
        os.chmod(path, 0o644)
        with open(path, "r+b") as handle:  # in place: the same inode
            handle.truncate(0)
            handle.write(zlib.compress(b"blob %d\0" % len(body) + body))
'"""


@pytest.mark.slow
@pytest.mark.parametrize(
    ("poison", "sandbox"),
    # The container's user writes through the inodes it was lent: garbage shows it; the valid
    # objects need no second container session to make their point.
    [
        ("garbage", "local"),
        pytest.param("garbage", "docker", marks=pytest.mark.docker),
        ("valid-but-different", "local"),
    ],
)
def test_an_agent_overwriting_its_objects_does_not_touch_a_later_run(
    tmp_path: Path, poison: str, sandbox: str
) -> None:
    attack = POISON_GARBAGE if poison == "garbage" else POISON_VALID
    script = f"cat README.md > seen.txt; {attack}; {DO_THE_TASK}"
    results, output = run_session(tmp_path, script, sandbox=sandbox, runs=2)

    runs = run_dirs(results)
    assert [path.name for path in runs] == ["run-01", "run-02"], output[-3000:]
    for run_dir in runs:
        assert_graded(run_dir, output)
        diff = (run_dir / "workspace.diff").read_text()
        assert "+++ b/seen.txt\n@@ -0,0 +1 @@\n+start\n" in diff, diff


SECRET = "sk-ant-api03-kept-workspace-secret-0123456789"
LEAVE_A_MESS = " ; ".join(
    [
        "truncate -s 200M big.bin",  # sparse: costs the agent nothing, 200 MB to the reader
        "env > env.txt",
        'touch "named-$ANTHROPIC_API_KEY"',
        "ln -s /etc/shadow notes.txt",
        "mkfifo pipe",
        DO_THE_TASK,
    ]
)


@pytest.fixture(scope="module", params=SANDBOXES)
def messy_run(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One kept run whose agent leaves a big file, its environment, a link and a FIFO."""
    tmp_path = tmp_path_factory.mktemp(f"messy-{request.param}")
    results, output = run_session(
        tmp_path,
        LEAVE_A_MESS,
        sandbox=request.param,
        extra=("--scylla-keep-workspace",),
        env={"ANTHROPIC_API_KEY": SECRET},
    )
    [run_dir] = run_dirs(results)
    assert_graded(run_dir, output)
    return run_dir


@pytest.mark.slow
def test_a_200_mb_file_is_listed_as_cut_not_put_in_the_diff(messy_run: Path) -> None:
    diff = messy_run / "workspace.diff"
    assert diff.stat().st_size < 64 * 1024
    text = diff.read_text()
    assert text.startswith(
        "# scylla: big.bin (209715200 bytes) not shown: over the 1048576-byte limit per file\n"
    )
    assert "# scylla: not files, left out: pipe\n" in text
    assert "+++ b/done.txt" in text
    record = json.loads((messy_run / "run_result.json").read_text())
    assert "big.bin" in record["workspace"]["files"]
    assert record["workspace"]["cut"] == ["big.bin (209715200 bytes)"]


@pytest.mark.slow
def test_a_kept_workspace_is_redacted_and_keeps_links_as_links(messy_run: Path) -> None:
    kept = messy_run / "workspace"
    environment = (kept / "env.txt").read_text()
    assert "ANTHROPIC_API_KEY=[REDACTED]" in environment
    assert SECRET not in environment
    assert os.path.islink(kept / "notes.txt")
    assert os.readlink(kept / "notes.txt") == "/etc/shadow"
    assert not (kept / "pipe").exists() and not (kept / ".git").exists()
    assert not (kept / "big.bin").exists()  # over the kept workspace's limit per file
    manifest = json.loads((messy_run / "kept_workspace.json").read_text())
    left_out = {entry["path"]: entry["reason"] for entry in manifest["left_out"]}
    assert set(left_out) == {".git", "big.bin", "pipe"}
    assert (kept / "done.txt").read_text() == "ok\n"
    assert (kept / "named-[REDACTED]").is_file()
    for path in messy_run.rglob("*"):
        assert SECRET not in str(path)
        if path.is_file() and not path.is_symlink():
            assert SECRET.encode() not in path.read_bytes(), path


@pytest.mark.parametrize(
    ("link", "target"),
    [("repo/passwd", "/etc/passwd"), ("repo/lib/up", "../../../.."), ("expected/hint", "/root")],
)
def test_a_fixture_symlink_leading_out_is_a_collection_error(
    pytester: pytest.Pytester, link: str, target: str
) -> None:
    experiment = write_experiment(pytester.path, "exp-link")
    (experiment / link).parent.mkdir(parents=True, exist_ok=True)
    os.symlink(target, experiment / link)
    result = pytester.runpytest(str(experiment / "test.yaml"), "--collect-only", "-q")
    assert result.ret != 0
    where = "the shipped repository" if link.startswith("repo/") else "the experiment directory"
    result.stdout.fnmatch_lines([f"*test.yaml: *symlink '{link}' -> '{target}' leaves {where}*"])


@pytest.mark.slow
def test_links_outside_the_fixture_material_do_not_stop_collection(
    pytester: pytest.Pytester,
) -> None:
    experiment = write_experiment(pytester.path, "exp-kept")
    # A results folder kept inside the experiment holds the agents' links (kept as links).
    kept = experiment / "results" / "exp-kept" / "T0" / "00-empty" / "run-01" / "workspace"
    kept.mkdir(parents=True)
    os.symlink("/etc/shadow", kept / "notes.txt")
    os.symlink("README.md", experiment / "repo" / "readme-link")  # inside the repository
    result = pytester.runpytest(str(experiment / "test.yaml"), "--collect-only", "-q")
    assert result.ret == 0, result.stdout.str()


def test_keep_workspace_redacts_names_and_contents_and_caps_sizes(tmp_path: Path) -> None:
    workspace = tmp_path / "workspace"
    (workspace / ".git").mkdir(parents=True)
    (workspace / ".git" / "config").write_text(f"token = {SECRET}\n")
    (workspace / f"named-{SECRET}").write_text("content\n")
    (workspace / "named-[REDACTED]").write_text("a name the redacted one collides with\n")
    (workspace / "sub").mkdir()
    (workspace / "sub" / "log.txt").write_text(f"line\nkey={SECRET}\n" * 3)
    (workspace / "sub" / "tool.sh").write_text("echo hi\n")
    (workspace / "sub" / "tool.sh").chmod(0o755)
    (workspace / "big.bin").write_bytes(b"x" * 5000)
    os.symlink(f"/tmp/{SECRET}", workspace / "link")
    os.mkfifo(workspace / "pipe")
    destination = tmp_path / "run" / "workspace"

    kept = keep_workspace(
        workspace, destination, Redactor([SECRET]), KeepLimits(max_file_bytes=4096)
    )

    assert sorted(path.relative_to(destination).as_posix() for path in destination.rglob("*")) == [
        "link",
        "named-[REDACTED]",
        "sub",
        "sub/log.txt",
        "sub/tool.sh",
    ]
    assert (destination / "sub" / "log.txt").read_text() == "line\nkey=[REDACTED]\n" * 3
    assert os.access(destination / "sub" / "tool.sh", os.X_OK)
    assert os.readlink(destination / "link") == "/tmp/[REDACTED]"
    assert (kept.files, kept.links) == (3, 1)
    assert {entry.path: entry.reason for entry in kept.left_out} == {
        ".git": "git data (cannot be redacted)",
        "big.bin": "5000 bytes, over the 4096-byte limit per file",
        "named-[REDACTED]": "its redacted name is taken",
        "pipe": "not a file (FIFO, socket, device)",
    }
    manifest = (tmp_path / "run" / KEPT_MANIFEST_FILE).read_text()
    assert SECRET not in manifest and json.loads(manifest)["files"] == 3
