"""Time the real Claude Code CLI from start to exit against the fake Messages API.

One scripted turn (a final text), N runs in fresh workspaces, so the figure is the CLI's own
start-up and shutdown overhead: what every dry-run or real run pays on top of the model.

    python benchmarks/bench_claude_cli.py [--runs 5] [--model claude-sonnet-4-5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # runnable from a checkout

from pytest_scylla.agents.claude_code import bundled_claude
from pytest_scylla.testing.fake_api import FakeMessagesAPI
from pytest_scylla.testing.scripted_model import DryRunScript


def bundled_cli() -> Path:
    path = bundled_claude()
    if path is None:
        raise SystemExit("claude-agent-sdk with its bundled Claude Code CLI is not installed")
    return path


def one_run(cli: Path, api: FakeMessagesAPI, model: str) -> float:
    with tempfile.TemporaryDirectory(prefix="bench-cli-") as tmp:
        workspace, home = Path(tmp) / "ws", Path(tmp) / "home"
        workspace.mkdir()
        home.mkdir()
        subprocess.run(["git", "init", "-q"], cwd=workspace, check=True)
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(home),
            "ANTHROPIC_BASE_URL": api.base_url,
            "ANTHROPIC_API_KEY": "sk-ant-fake-key",
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
            "DISABLE_AUTOUPDATER": "1",
            "DISABLE_TELEMETRY": "1",
            "IS_SANDBOX": "1",
        }
        argv = [str(cli), "-p", "Say done.", "--output-format", "stream-json", "--verbose"]
        argv += ["--model", model, "--dangerously-skip-permissions"]
        start = time.monotonic()
        proc = subprocess.run(argv, cwd=workspace, env=env, capture_output=True, timeout=120)
        elapsed = time.monotonic() - start
        if proc.returncode != 0 or b'"type":"result"' not in proc.stdout.replace(b" ", b""):
            raise SystemExit(f"CLI run failed ({proc.returncode}): {proc.stderr[-1000:]!r}")
        return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--model", default="claude-sonnet-4-5")
    args = parser.parse_args()
    cli = bundled_cli()
    script = DryRunScript.model_validate({"turns": [{"text": "Done."}]})
    with FakeMessagesAPI(script.as_responder()) as api:
        times = [one_run(cli, api, args.model) for _ in range(args.runs)]
    print(f"claude CLI start-to-exit, 1 scripted turn, {args.runs} runs ({cli})")
    print(
        f"median {statistics.median(times):.2f} s  min {min(times):.2f} s  max {max(times):.2f} s"
    )


if __name__ == "__main__":
    main()
