"""A study on workers with their own disks: every file comes home (issue 14 item 1).

Real xdist sessions in a subprocess: `--tx popen//chdir=<dir>` workers with a relative
`--results-dir` (so each writes to its own folder, as a worker on another host would), and
an execnet socket gateway on 127.0.0.1 started by the test. The controller's results tree
must hold what a local session leaves, and a rejudge and a regenerate must work on it after
the workers' folders are deleted. Plus the packing itself, its cap, and a hostile payload.
"""

from __future__ import annotations

import base64
import io
import json
import random
import shutil
import socket
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest
from test_judging_e2e import FAKE_KEY, OPUS
from test_judging_e2e import judge_api as judge_api

from pytest_scylla.artifacts import (
    LEFT_OUT_NOTE,
    controller_experiment_file,
    pack_run,
    unpack_run,
)
from pytest_scylla.testing.fake_api import FakeMessagesAPI

REPO = Path(__file__).resolve().parents[1]
EXPERIMENT = REPO / "experiments" / "test-001"
RUNS = ["--tiers", "T0", "--runs", "1", "--max-subtests", "2", "--agent", "oracle"]
NO_CACHE = ("-p", "no:cacheprovider")


@pytest.fixture
def project(pytester: pytest.Pytester) -> Path:
    pytester.makeini("[pytest]\n")
    shutil.copytree(EXPERIMENT, pytester.path / "experiments" / "test-001")
    return pytester.path


def remote_args(project: Path, *tx: str) -> list[str]:
    """xdist rewrites paths on the command line against its rsync roots: the experiment
    is given absolute, and path options as one word (`--opt=value`) so it leaves them."""
    args = [str(project / "experiments" / "test-001"), *RUNS, "--results-dir=results"]
    args += ["--dist", "load", f"--rsyncdir={project / 'experiments'}", *NO_CACHE]
    for spec in tx:
        args += ["--tx", spec]
    return args


def tree(root: Path) -> set[str]:
    """Every file; not `.scylla/` (the judge cache and the API backoff state are each
    process's own working state, not results)."""
    return {
        str(path.relative_to(root))
        for path in root.rglob("*")
        if path.is_file() and not str(path.relative_to(root)).startswith(".scylla/")
    }


def run_files(root: Path) -> dict[str, bytes]:
    """Every file of every run folder (not the aggregates, which carry a time)."""
    return {
        str(path.relative_to(root)): path.read_bytes()
        for path in root.rglob("run-*/**/*")
        if path.is_file() and path.name != "run_result.json"
    }


@pytest.mark.slow
def test_popen_chdir_workers_send_every_file_home_and_a_rejudge_needs_no_worker(
    pytester: pytest.Pytester, project: Path, tmp_path: Path, judge_api: FakeMessagesAPI
) -> None:
    api, _table = judge_api
    judging = ["--judge-model", OPUS]
    local = pytester.runpytest(
        "experiments/test-001", *RUNS, *judging, "--results-dir", "local", *NO_CACHE
    )
    local.assert_outcomes(passed=2)
    workers = tmp_path / "worker"
    workers.mkdir()
    remote = pytester.runpytest_subprocess(
        *remote_args(project, f"2*popen//chdir={workers}"), *judging
    )
    remote.assert_outcomes(passed=2)
    worker_results = workers / "results"
    assert worker_results.is_dir(), "the workers wrote to their own folder"
    controller = project / "results"
    # Everything a local session leaves, and each run's files byte for byte as the worker's.
    assert tree(controller) == tree(project / "local")
    worker_files = run_files(worker_results)
    assert worker_files and run_files(controller) == worker_files
    diff = (controller / "test-001" / "T0" / "00-empty" / "run-01" / "workspace.diff").read_text()
    assert diff.strip()

    shutil.rmtree(workers)
    shutil.rmtree(project / "experiments")  # only the controller's results are left
    before = len(api.message_requests())
    rejudged = pytester.runpytest(str(controller / "test-001"), "--scylla-rejudge", *NO_CACHE)
    rejudged.assert_outcomes(passed=2)
    requests = api.message_requests()[before:]
    assert len(requests) == 2
    # The judges read the diff that came home (no worker disk is left to read it from).
    assert any(diff.splitlines()[0] in json.dumps(request.body) for request in requests)
    regenerated = pytester.runpytest(str(controller), "--scylla-regenerate", *NO_CACHE)
    regenerated.assert_outcomes(passed=2)
    assert FAKE_KEY.encode() not in b"".join(run_files(controller).values())


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.slow
def test_socket_gateway_worker_sends_every_file_home(
    pytester: pytest.Pytester, project: Path, tmp_path: Path
) -> None:
    server_dir = tmp_path / "host-b"
    server_dir.mkdir()
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "execnet.script.socketserver", f"127.0.0.1:{port}"],
        cwd=server_dir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        # The probe above used the server's one-shot accept loop once; it serves again.
        result = pytester.runpytest_subprocess(
            *remote_args(project, f"socket=127.0.0.1:{port}//chdir=work"),
            "--judge-model",
            "none",
        )
    finally:
        server.kill()
        server.wait()
    result.assert_outcomes(passed=2)
    worker_results = server_dir / "work" / "results"
    controller = project / "results"
    assert run_files(controller) == run_files(worker_results) != {}
    shutil.rmtree(server_dir)
    shutil.rmtree(project / "experiments")
    again = pytester.runpytest(str(controller), "--scylla-regenerate", *NO_CACHE)
    again.assert_outcomes(passed=2)
    assert (controller / "test-001" / "report.md").is_file()


# ------------------------------------------------------------------------------ packing


def make_run(folder: Path) -> None:
    (folder / "agent").mkdir(parents=True)
    (folder / "agent" / "stdout.jsonl").write_text('{"type": "result"}\n')
    (folder / "judges" / "m").mkdir(parents=True)
    (folder / "judges" / "m" / "prompt.md").write_text("judge this\n")
    (folder / "workspace.diff").write_text("+ok\n")
    (folder / "run_result.json").write_text("{}")  # travels as its own report attribute


def test_pack_and_unpack_round_trip_skip_identical_files(tmp_path: Path) -> None:
    make_run(tmp_path / "w")
    (tmp_path / "w" / "link").symlink_to("/etc/passwd")
    packed = pack_run(tmp_path / "w")
    assert packed is not None and packed.files == 3 and not packed.left_out
    first = unpack_run(packed.payload, tmp_path / "c")
    assert (first.written, first.unchanged, first.problems) == (3, 0, [])
    assert tree(tmp_path / "c") == {"agent/stdout.jsonl", "judges/m/prompt.md", "workspace.diff"}
    again = unpack_run(packed.payload, tmp_path / "c")
    assert (again.written, again.unchanged) == (0, 3)
    assert pack_run(tmp_path / "missing") is None


def test_a_run_over_the_cap_leaves_its_largest_file_and_says_so(tmp_path: Path) -> None:
    make_run(tmp_path / "w")
    noise = random.Random(0).randbytes(300_000)  # does not compress
    (tmp_path / "w" / "agent" / "stderr.log").write_bytes(noise)
    packed = pack_run(tmp_path / "w", max_bytes=200_000)
    assert packed is not None
    assert len(base64.b64decode(packed.payload)) <= 200_000
    assert [entry.path for entry in packed.left_out] == ["agent/stderr.log"]
    unpack_run(packed.payload, tmp_path / "c")
    note = (tmp_path / "c" / LEFT_OUT_NOTE).read_text()
    assert "agent/stderr.log" in note and str(len(noise)) in note
    assert (tmp_path / "c" / "workspace.diff").read_text() == "+ok\n"


def hostile_payload() -> str:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name in ("../escaped.txt", "/tmp/absolute.txt", "ok/../../up.txt", "fine.txt"):
            info = tarfile.TarInfo(name)
            info.size = 4
            archive.addfile(info, io.BytesIO(b"evil"))
        link = tarfile.TarInfo("agent")
        link.type = tarfile.SYMTYPE
        link.linkname = "/"
        archive.addfile(link)
    return base64.b64encode(buffer.getvalue()).decode()


def test_a_hostile_payload_writes_nothing_outside_its_run_folder(tmp_path: Path) -> None:
    target = tmp_path / "results" / "run-01"
    outside = tmp_path / "results" / "elsewhere"
    outside.mkdir(parents=True)
    # A link already in the run folder (however it got there) is not written through.
    target.mkdir()
    (target / "judges").symlink_to(outside)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        info = tarfile.TarInfo("judges/prompt.md")
        info.size = 4
        archive.addfile(info, io.BytesIO(b"evil"))
    through_link = unpack_run(base64.b64encode(buffer.getvalue()).decode(), target)
    result = unpack_run(hostile_payload(), target)
    assert len(result.problems) == 4 and len(through_link.problems) == 1
    assert [path.name for path in tmp_path.rglob("*") if path.is_file()] == ["fine.txt"]
    assert not list(outside.iterdir())
    assert unpack_run("not base64 !", target).problems


def test_the_controller_snapshots_its_own_copy_of_a_remote_workers_experiment(
    tmp_path: Path,
) -> None:
    mine = tmp_path / "experiments" / "test-001" / "test.yaml"
    mine.parent.mkdir(parents=True)
    mine.write_text("id: test-001\n")
    remote = Path("/home/worker/pyexecnetcache/experiments/test-001/test.yaml")
    for argument in (str(tmp_path / "experiments"), str(mine.parent), f"{mine}::T0"):
        assert controller_experiment_file(remote, [argument]) == mine
    assert controller_experiment_file(remote, [str(tmp_path / "elsewhere")]) == remote
    assert controller_experiment_file(mine, []) == mine


@pytest.mark.slow
def test_budget_stops_workers_that_cannot_see_the_stop_file(
    pytester: pytest.Pytester, project: Path, tmp_path: Path
) -> None:
    """popen//chdir workers with a relative --results-dir write to their own folder, as on
    another host: the stop file is not theirs to read, so the controller stops the session."""
    workers = tmp_path / "worker"
    workers.mkdir()
    args = remote_args(project, f"2*popen//chdir={workers}")
    args[args.index("1")] = "10"  # --runs 10: 20 runs, far more than two workers hold
    result = pytester.runpytest_subprocess(*args, "--judge-model", "none", "--max-cost", "0")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    outcomes = result.parseoutcomes()
    assert 1 <= outcomes["passed"] < 20 and "skipped" not in outcomes, outcomes
    result.stdout.fnmatch_lines(
        [
            "*budget stop: spent $0.0000 of --max-cost $0.0000",
            "*not run (budget): the runs no worker had started (a worker could not see*",
        ]
    )
    # What ran came home and is aggregated.
    assert (project / "results" / "test-001" / "result.json").is_file()
