"""All of a run's checks in one sandbox process (judges/check_batch.py) give the results one
process per check gives, in the local sandbox (plain and bubblewrap) and the docker one;
and a check cannot forge the runner's answer."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from pytest_scylla.judges import check_batch
from pytest_scylla.judges.checks import run_after_checks, run_check, run_checks
from pytest_scylla.records import CheckResult
from pytest_scylla.redact import REDACTED, Redactor
from pytest_scylla.sandbox.base import ProcessOutcome, RunDirs, Sandbox
from pytest_scylla.sandbox.bwrap import bwrap_problem
from pytest_scylla.sandbox.local import LocalSandboxFactory
from pytest_scylla.spec.experiment import CheckCommand
from pytest_scylla.spec.rubric import NormalizedRubric
from tests.docker_engine import require_images

SECRET = "sk-ant-batch-secret-0123456789"
PATH = "/usr/local/bin:/usr/bin:/bin"


class CountingSandbox:
    """Delegates to a real sandbox and counts its processes."""

    def __init__(self, inner: Sandbox) -> None:
        self.inner = inner
        self.paths = inner.paths
        self.argvs: list[Sequence[str]] = []

    def run(self, argv: Sequence[str], **kwargs: Any) -> ProcessOutcome:
        self.argvs.append(argv)
        return self.inner.run(argv, **kwargs)

    def close(self) -> None:
        self.inner.close()


@pytest.fixture(
    params=[
        "none",
        pytest.param(
            "bwrap", marks=pytest.mark.skipif(bwrap_problem() is not None, reason="no bwrap")
        ),
        pytest.param("docker", marks=pytest.mark.docker),
    ]
)
def box(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[CountingSandbox]:
    dirs = RunDirs(tmp_path / "workspace", tmp_path / "home", tmp_path / "inputs")
    factory: Any
    if request.param == "docker":
        require_images()
        from pytest_scylla.sandbox.docker import DockerSandboxFactory, DockerSettings

        factory = DockerSandboxFactory(DockerSettings(network="none"))
    else:
        factory = LocalSandboxFactory(kill_grace_s=0.5, isolation=request.param)
    sandbox = CountingSandbox(factory.open(dirs, {"scylla.run": "tests::check-batch"}))
    sandbox.kind = request.param  # type: ignore[attr-defined]
    yield sandbox
    sandbox.close()
    if request.param == "docker":
        factory.close_all()


def _env(box: CountingSandbox, path: str = PATH) -> dict[str, str]:
    return {
        "PATH": path,
        "HOME": box.paths.home,
        "LANG": "C.UTF-8",
        "TMPDIR": f"{box.paths.home}/tmp",
        "SECRET": SECRET,
    }


def _one_by_one(
    box: CountingSandbox, checks: list[CheckCommand], env: Mapping[str, str]
) -> list[CheckResult]:
    redactor = Redactor([SECRET])
    return [
        run_check(
            box.inner,
            check.name,
            check.command,
            env=env,
            timeout_s=check.timeout_seconds,
            redactor=redactor,
        )
        for check in checks
    ]


def _same(batch: list[CheckResult], single: list[CheckResult]) -> None:
    def strip(results: list[CheckResult]) -> list[dict[str, Any]]:
        return [result.model_dump(exclude={"duration_s"}) for result in results]

    assert strip(batch) == strip(single)


def _check(name: str, command: str, timeout_s: float = 30) -> CheckCommand:
    return CheckCommand(name=name, command=command, timeout_seconds=timeout_s)


# Its name is built at run time, so no command line (the runner's holds every command)
# matches the pattern that looks for it.
LEFTOVER = '(n=scylla-left; exec -a "${n}over" sleep 100) &'
# -s: a process that ends between the glob and grep's read is not an error message (the
# host's /proc, without isolation, has the other xdist worker's processes coming and going).
NO_LEFTOVER = "! grep -las 'scylla-lef[t]over' /proc/[0-9]*/cmdline"


def test_batch_gives_the_results_of_one_process_per_check(box: CountingSandbox) -> None:
    checks = [
        _check("ok", "true"),
        _check("fails", "echo out; echo err >&2; exit 1"),
        _check("missing", "no-such-command-here"),
        _check("paths", 'echo "in $PWD"; echo "key $SECRET" >&2'),
        _check("bytes", r"printf 'caf\xc3\xa9 \xff\xfe end\n'"),
        _check("background", f"{LEFTOVER} setsid sleep 100 & echo started"),
        _check("no-leftover", NO_LEFTOVER),
        _check("slow", "echo before; sleep 30", timeout_s=1),
        _check("after-timeout", "echo still runs"),
        _check("long", "seq 1 20000"),
        # Only stdin, stdout and stderr: nothing of the runner's is inherited.
        _check("descriptors", "ls /proc/$$/fd; true"),
    ]
    env = _env(box)
    batch = run_checks(box, checks, env=env, redactor=Redactor([SECRET]))
    assert len(box.argvs) == 1 and box.argvs[0][3] == check_batch.RUNNER_SOURCE
    by_name = {result.name: result for result in batch}
    assert [by_name[name].exit_code for name in ("ok", "fails", "missing")] == [0, 1, 127]
    assert by_name["paths"].output_tail == f"in <workspace>\nkey {REDACTED}\n"
    assert "\ufffd" in by_name["bytes"].output_tail and "café" in by_name["bytes"].output_tail
    assert by_name["background"].exit_code == 0 and by_name["background"].duration_s < 10
    assert by_name["no-leftover"].exit_code == 0
    assert by_name["slow"].timed_out and by_name["slow"].exit_code is None
    assert by_name["after-timeout"].exit_code == 0
    assert by_name["long"].output_tail.endswith("19999\n20000\n")
    assert len(by_name["long"].output_tail) == 4000
    assert by_name["descriptors"].output_tail == "0\n1\n2\n"
    _same(batch, _one_by_one(box, checks, env))


def test_after_checks_and_rubric_commands_share_one_process(box: CountingSandbox) -> None:
    rubric = NormalizedRubric.model_validate(
        {
            "categories": [
                {
                    "name": "functional",
                    "weight": 1.0,
                    "items": [
                        _item("F1", "true"),
                        _item("F2", None),
                        _item("F3", "exit 4"),
                    ],
                }
            ]
        }
    )
    after, commands = run_after_checks(
        box, [_check("build", "echo built")], rubric, env=_env(box), redactor=Redactor([])
    )
    assert len(box.argvs) == 1
    assert [(result.name, result.output_tail) for result in after] == [("build", "built\n")]
    assert {name: result.exit_code for name, result in commands.items()} == {"F1": 0, "F3": 4}


def _item(item_id: str, command: str | None) -> dict[str, Any]:
    return {
        "id": item_id,
        "check": item_id,
        "points": 1.0,
        "na_condition": None,
        "command": command,
        "command_timeout_seconds": 30,
        "binary": True,
    }


# The runner's command line (readable by any process of the uid) is: python3 -I -S -c
# <source> <nonce> <scratch> <tail bytes> <kill grace> then a timeout and a command per check.
FORGER = r"""
import json, os, signal
runner = os.getppid()
arguments = open(f"/proc/{runner}/cmdline", "rb").read().split(b"\0")[:-1]
at = arguments.index(b"-c") + 2
nonce, checks = arguments[at].decode(), len(arguments[at + 4 :]) // 2
fake = {"exit_code": 0, "timed_out": False, "duration_s": 0.0, "stdout_tail": "", "stderr_tail": ""}
answer = json.dumps({"nonce": nonce, "results": [fake] * checks})
for fd in ("1", "2"):
    try:
        with open(f"/proc/{runner}/fd/{fd}", "w") as out:
            out.write(answer)
        print("forged through fd", fd)
    except OSError as error:
        print("refused:", type(error).__name__)
os.kill(runner, signal.SIGKILL)
"""


def test_a_check_cannot_forge_the_runners_answer(box: CountingSandbox) -> None:
    """The attack: a check (the agent's code: a conftest.py, a build script) writes a
    made-up answer, every command passed, to the runner's stdout, then kills the runner."""
    if box.kind == "none" and os.geteuid() == 0:  # type: ignore[attr-defined]
        pytest.skip("without isolation a root check is root on the host: nothing holds it")
    checks = [_check("attack", f"python3 -I -c '{FORGER}'"), _check("graded", "false")]
    results = run_checks(box, checks, env=_env(box), redactor=Redactor([]))
    assert results[1].exit_code == 1
    assert "forged through" not in results[0].output_tail


def test_a_module_planted_in_the_workspace_is_not_imported_by_the_runner(
    box: CountingSandbox, tmp_path: Path
) -> None:
    for name in ("json", "base64", "subprocess", "tempfile", "ctypes", "binascii"):
        (tmp_path / "workspace" / f"{name}.py").write_text(
            'print(\'{"nonce": "x", "results": []}\'); raise SystemExit(0)\n'
        )
    results = run_checks(box, [_check("graded", "exit 3")], env=_env(box), redactor=Redactor([]))
    assert len(box.argvs) == 1  # the runner worked, with the standard library's modules
    assert results[0].exit_code == 3


@pytest.mark.parametrize("isolation", ["none", "bwrap"])
def test_a_symlinked_scratch_folder_is_refused_and_the_checks_run_one_by_one(
    tmp_path: Path, isolation: str
) -> None:
    if isolation == "bwrap" and bwrap_problem() is not None:
        pytest.skip(str(bwrap_problem()))
    dirs = RunDirs(tmp_path / "workspace", tmp_path / "home", tmp_path / "inputs")
    sandbox = CountingSandbox(LocalSandboxFactory(isolation=isolation).open(dirs, {}))  # type: ignore[arg-type]
    outside = tmp_path / "outside"
    outside.mkdir()
    (dirs.home / "tmp").rmdir()
    (dirs.home / "tmp").symlink_to(outside)
    checks = [_check("a", "exit 2"), _check("b", "echo fine")]
    env = {"PATH": PATH, "HOME": str(dirs.home), "LANG": "C.UTF-8"}
    results = run_checks(sandbox, checks, env=env, redactor=Redactor([]))
    assert [argv[2] for argv in sandbox.argvs][1:] == ["exit 2", "echo fine"]
    assert len(sandbox.argvs) == 3
    assert [(r.exit_code, r.output_tail) for r in results] == [(2, ""), (0, "fine\n")]
    assert list(outside.iterdir()) == []


def test_read_tail_never_follows_a_symlink(tmp_path: Path) -> None:
    target = tmp_path / "target"
    target.write_bytes(b"secret")
    (tmp_path / "link").symlink_to(target)
    with pytest.raises(OSError):
        check_batch.read_tail(tmp_path / "link", 100)
    assert check_batch.read_tail(target, 3) == b"ret"


@pytest.mark.parametrize("isolation", ["none", "bwrap"])
@pytest.mark.parametrize("python3", [None, "#!/bin/sh\necho not-json\n", "#!/bin/sh\nexit 0\n"])
def test_no_python3_or_a_garbled_answer_falls_back_to_one_by_one(
    tmp_path: Path, isolation: str, python3: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(check_batch, "RUNNER_PYTHONS", ())  # only PATH's python3
    if isolation == "bwrap" and bwrap_problem() is not None:
        pytest.skip(str(bwrap_problem()))
    tools = tmp_path / "tools"
    tools.mkdir()
    (tools / "bash").symlink_to("/bin/bash")
    if python3 is not None:
        (tools / "python3").write_text(python3)
        (tools / "python3").chmod(0o755)
    dirs = RunDirs(tmp_path / "workspace", tmp_path / "home", tmp_path / "inputs")
    sandbox = CountingSandbox(LocalSandboxFactory(isolation=isolation).open(dirs, {}))  # type: ignore[arg-type]
    env = {"PATH": str(tools), "HOME": str(dirs.home)}
    results = run_checks(
        sandbox, [_check("a", "exit 5"), _check("b", "true")], env=env, redactor=Redactor([])
    )
    assert [argv[2] for argv in sandbox.argvs][-2:] == ["exit 5", "true"]
    assert [result.exit_code for result in results] == [5, 0]
