"""The local sandbox under bubblewrap against a hostile agent: what it must not see, and
what it must not leave running. Each attack is also run in the plain sandbox, where it
works: that proves the attack is real, and that bubblewrap is what stops it."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from process_scan import processes_with

from pytest_scylla.sandbox.base import RunDirs
from pytest_scylla.sandbox.bwrap import bwrap_problem, readonly_extras
from pytest_scylla.sandbox.local import Isolation, LocalSandbox, LocalSandboxFactory

pytestmark = pytest.mark.skipif(bwrap_problem() is not None, reason=str(bwrap_problem()))

HOST_PATH = os.environ.get("PATH", "/usr/bin:/bin")


class Layout:
    """A project with an experiment and results, a work root with this run, another run
    and the source cache: the places a run must not reach."""

    def __init__(self, root: Path) -> None:
        project = root / "project"
        self.experiment = project / "experiments" / "exp-a"
        self.rubric = self.experiment / "expected" / "rubric.yaml"
        self.solution = self.experiment / "solution" / "solve.sh"
        self.config = self.experiment / "config.yaml"
        self.results = project / "results"
        self.result_file = self.results / "exp-a" / "T0" / "00" / "run-01" / "run_result.json"
        work = root / "work"
        self.work = work
        self.other_run = work / "runs" / "exp-a-T0-00-02-1" / "workspace" / "answer.txt"
        self.source = work / "sources" / "exp-a" / "HEAD"
        # The baselines the xdist workers of a session share (run/shared_baselines.py).
        self.baseline = work / "runs" / "baselines-testrun-123" / "0f3a.json"
        for path in (self.rubric, self.solution, self.config, self.result_file):
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("grading material\n")
        for path in (self.other_run, self.source, self.baseline):
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("not yours\n")
        run = work / "runs" / "exp-a-T0-00-01-1"
        self.dirs = RunDirs(run / "workspace", run / "home", run / "inputs")

    def forbidden(self) -> list[Path]:
        found = [self.rubric, self.solution, self.config, self.result_file]
        found += [self.other_run, self.source, self.baseline]
        found += [Path(p) for p in ("/etc/shadow", "/etc/gshadow") if os.access(p, os.R_OK)]
        claude = Path.home() / ".claude"
        if claude.exists():  # the real home's Claude Code folder, where it exists
            found.append(claude)
        return found

    def sandbox(self, isolation: Isolation) -> LocalSandbox:
        factory = LocalSandboxFactory(
            kill_grace_s=0.5,
            isolation=isolation,
            hidden=[self.results, self.experiment, self.work],
        )
        return factory.open(self.dirs, {"run": "t"})


def run_script(sandbox: LocalSandbox, script: str, tmp_path: Path, **kw: object) -> str:
    out = tmp_path / f"out-{uuid.uuid4().hex[:6]}"
    outcome = sandbox.run(
        ["bash", "-c", script],
        env={"PATH": HOST_PATH, "HOME": sandbox.paths.home, **kw.pop("env", {})},  # type: ignore[dict-item]
        timeout_s=30,
        stdout_path=out,
        stderr_path=out.with_suffix(".err"),
    )
    assert not outcome.timed_out
    return out.read_text()


@pytest.mark.parametrize("isolation", ["none", "bwrap"])
def test_grading_material_results_other_runs_and_home_are_invisible(
    tmp_path: Path, isolation: Isolation
) -> None:
    layout = Layout(tmp_path)
    targets = layout.forbidden()
    # Present, but empty, is as good as absent (the system's secret files are shadowed).
    script = "; ".join(f"test -s {path} && echo SEEN {path}" for path in targets) + "; true"
    seen = run_script(layout.sandbox(isolation), script, tmp_path)
    if isolation == "none":
        assert seen.count("SEEN") == len(targets)  # the attack works on a plain subprocess
    else:
        assert seen == ""


@pytest.mark.parametrize("isolation", ["none", "bwrap"])
def test_a_run_cannot_forge_the_baselines_other_runs_read(
    tmp_path: Path, isolation: Isolation
) -> None:
    """The shared baseline file decides what every later run of the session is compared
    with: a run that could write it would grade the others."""
    layout = Layout(tmp_path)
    forged = '{"node_id": "x", "results": []}'
    run_script(
        layout.sandbox(isolation),
        f"mkdir -p {layout.baseline.parent} 2>/dev/null; echo '{forged}' > {layout.baseline}; true",
        tmp_path,
    )
    written = layout.baseline.read_text()
    if isolation == "none":
        assert forged in written  # the attack works on a plain subprocess
    else:
        assert written == "not yours\n"


@pytest.mark.parametrize("isolation", ["none", "bwrap"])
def test_the_harness_environment_is_out_of_reach_through_proc(
    tmp_path: Path, isolation: Isolation, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = f"sk-ant-harness-{uuid.uuid4().hex}"
    monkeypatch.setenv("SCYLLA_TEST_HARNESS_SECRET", secret)
    # The environment a process started with: run a child that inherits ours, as the
    # harness's own subprocesses (git, the fake API) would.
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        script = f"cat /proc/*/environ 2>/dev/null | tr '\\0' '\\n' | grep -c {secret}; ls /proc"
        seen = run_script(Layout(tmp_path).sandbox(isolation), script, tmp_path)
    finally:
        holder.kill()
        holder.wait()
    count = int(seen.split()[0])
    if isolation == "none":
        assert count >= 1
    else:
        assert count == 0
        # Its own namespace: bwrap's init, the script and its pipeline, nothing else.
        pids = [int(name) for name in seen.split()[1:] if name.isdigit()]
        assert pids and max(pids) < 50


def test_run_folders_writable_inputs_and_system_read_only(tmp_path: Path) -> None:
    layout = Layout(tmp_path)
    dirs = layout.dirs
    sandbox = layout.sandbox("bwrap")
    (dirs.inputs / "prompt.md").write_text("task\n")
    script = (
        f"echo w > {dirs.workspace}/new.txt && echo WS; "
        f"echo h > {dirs.home}/h.txt && echo HOME; "
        f"echo i > {dirs.inputs}/prompt.md 2>/dev/null || echo INPUTS-RO; "
        "touch /usr/scylla-probe 2>/dev/null || echo USR-RO; "
        "touch /etc/scylla-probe 2>/dev/null || echo ETC-RO; "
        "echo t > /tmp/private && echo TMP"
    )
    seen = run_script(sandbox, script, tmp_path).split()
    assert seen == ["WS", "HOME", "INPUTS-RO", "USR-RO", "ETC-RO", "TMP"]
    assert (dirs.workspace / "new.txt").read_text() == "w\n"
    assert (dirs.inputs / "prompt.md").read_text() == "task\n"
    assert not Path("/tmp/private").exists() or Path("/tmp/private").read_text() != "t\n"


def test_the_tools_a_run_needs_still_work(tmp_path: Path) -> None:
    """Python (pyenv's, inside the hidden home on these machines, through its shims), git."""
    layout = Layout(tmp_path)
    script = (
        "python3 -c 'import sys; print(sys.version_info[0])' && "
        f"{sys.executable} -c 'print(42)' && git init -q . && echo GIT"
    )
    seen = run_script(layout.sandbox("bwrap"), script, tmp_path).split()
    assert seen == ["3", "42", "GIT"]


def test_path_entries_holding_hidden_folders_are_not_shown(tmp_path: Path) -> None:
    """A PATH of ``/``, the home, ``/tmp`` or the results would show what must stay hidden."""
    layout = Layout(tmp_path)
    hidden = [str(layout.results), str(layout.work), str(Path.home() / ".claude")]
    bin_dir = layout.results / "bin"
    bin_dir.mkdir()
    env_path = os.pathsep.join(["/", str(Path.home()), "/tmp", str(bin_dir), "/usr/bin"])
    shown = readonly_extras(["true"], {"PATH": env_path}, hidden)
    for folder in shown:
        for secret in hidden:
            assert not secret.startswith(folder + "/") and not folder.startswith(secret)
    assert "/" not in shown and str(Path.home()) not in shown


def test_setsid_child_is_gone_when_the_run_ends(tmp_path: Path) -> None:
    """The attack: a child in a session of its own, still running after the agent exits."""
    marker = f"scylla-escape-{uuid.uuid4().hex}"
    layout = Layout(tmp_path)
    script = (
        f"setsid sh -c 'sleep 1000; : {marker}' >/dev/null 2>&1 < /dev/null & sleep 0.2; exit 0"
    )
    started = time.monotonic()
    run_script(layout.sandbox("bwrap"), script, tmp_path)
    assert time.monotonic() - started < 10
    assert processes_with(marker, wait_s=3) == []


@pytest.mark.slow
def test_timeout_takes_the_whole_namespace_down(tmp_path: Path) -> None:
    marker = f"scylla-timeout-{uuid.uuid4().hex}"
    head, tail = marker.split("-", 1)
    layout = Layout(tmp_path)
    script = (
        f'm={head}; setsid sh -c "sleep 1000; : $m-{tail}" >/dev/null 2>&1 </dev/null & '
        f'sh -c "trap \\"\\" TERM; sleep 1000; : $m-{tail}"'
    )
    started = time.monotonic()
    outcome = layout.sandbox("bwrap").run(
        ["bash", "-c", script],
        env={"PATH": HOST_PATH},
        timeout_s=1,
        stdout_path=tmp_path / "out",
        stderr_path=tmp_path / "err",
    )
    assert outcome.timed_out and outcome.exit_code is None
    assert time.monotonic() - started < 10
    assert processes_with(marker, wait_s=3) == []


def zombie_children() -> list[int]:
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            fields = Path(entry.path, "stat").read_bytes().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        if fields[0] == b"Z" and int(fields[1]) == os.getpid():
            found.append(int(entry.name))
    return found


def test_no_zombie_is_left_to_the_harness(tmp_path: Path) -> None:
    """While a run is under way the harness is a subreaper: whatever bubblewrap leaves
    orphaned (its own init once, the command after a kill) must be reaped, not pile up."""
    sandbox = Layout(tmp_path).sandbox("bwrap")
    before = set(zombie_children())
    for script, timeout_s in [("exit 0", 30), ("exit 0", 30), ("sleep 100 & sleep 100", 0.5)]:
        sandbox.run(
            ["bash", "-c", script],
            env={"PATH": HOST_PATH},
            timeout_s=timeout_s,
            stdout_path=tmp_path / "out",
            stderr_path=tmp_path / "err",
        )
    time.sleep(0.2)
    assert set(zombie_children()) - before == set()
