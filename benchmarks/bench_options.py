"""What checking options and making things through hooks costs a session.

Every pytest run loads the plugin, so its start-up work is paid by sessions that run
nothing. This times, in process:

- reading settings: `ScyllaSettings.model_validate` of a typical command line plus the short
  model name resolution (`with_full_model_names`);
- `split_swallowed_paths` over a 20-word command line;
- a factory hook call through pluggy (`pytest_scylla_make_agent`, answered by builtins.py
  after a conftest-style implementation declines) and `pytest_scylla_known_names`;

and, in a subprocess, `pytest --collect-only -q experiments/test-001 --runs 1` from start to
exit (the plugin's whole start-up, collection included).

    python benchmarks/bench_options.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pluggy
import pytest

from pytest_scylla import builtins, hooks
from pytest_scylla.settings import ScyllaSettings, split_swallowed_paths, with_full_model_names

REPO = Path(__file__).resolve().parents[1]
COMMAND_LINE = [
    "experiments/test-001",
    "--tiers",
    "T0",
    "T1",
    "--runs",
    "10",
    "--model",
    "sonnet-4-5",
    "--judge-model",
    "opus-4-5",
    "--add-judge",
    "haiku-4-5",
    "--pass-threshold",
    "0.7",
    "--run-timeout",
    "600",
    "--agent",
    "oracle",
    "-n",
    "4",
]


def per_call_us(work: Callable[[], object], calls: int) -> float:
    started = time.perf_counter()
    for _ in range(calls):
        work()
    return (time.perf_counter() - started) / calls * 1e6


class StandInConfig:
    """What the built-in factories read from a config: the session's settings."""

    def __init__(self) -> None:
        from pytest_scylla.collect import SESSION_KEY
        from pytest_scylla.session import ScyllaSession

        self.stash = pytest.Stash()
        session = ScyllaSession(config=self, settings=ScyllaSettings())  # type: ignore[arg-type]
        self.stash[SESSION_KEY] = session


class Declines:
    """A conftest-style plugin that answers no name: the call falls through to builtins."""

    @pytest.hookimpl
    def pytest_scylla_make_agent(self, config: object, name: str) -> None:
        return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    options = parser.parse_args()

    values = {
        "tiers": ["T0", "T1"],
        "runs": "10",
        "model": "sonnet-4-5",
        "judge_model": "opus-4-5",
        "add_judges": ["haiku-4-5"],
        "pass_threshold": "0.7",
        "run_timeout": "600",
        "agent": "oracle",
    }
    settings_us = per_call_us(
        lambda: with_full_model_names(ScyllaSettings.model_validate(values)), 2000
    )
    split_us = per_call_us(lambda: split_swallowed_paths(COMMAND_LINE), 20000)

    manager = pluggy.PluginManager("pytest")
    manager.add_hookspecs(hooks)
    manager.register(builtins)
    manager.register(Declines())
    config = StandInConfig()
    make_us = per_call_us(
        lambda: manager.hook.pytest_scylla_make_agent(config=config, name="nop"), 20000
    )
    names_us = per_call_us(
        lambda: manager.hook.pytest_scylla_known_names(config=config, kind="judge"), 20000
    )

    walls = []
    for _ in range(options.repeat):
        started = time.perf_counter()
        subprocess.run(
            [
                *(sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider"),
                *("experiments/test-001", "--runs", "1", "--judge-model", "none"),
            ],
            cwd=REPO,
            check=True,
            capture_output=True,
        )
        walls.append(time.perf_counter() - started)

    print(f"settings validated and models resolved: {settings_us:8.1f} us per session")
    print(f"split_swallowed_paths, 20 words:        {split_us:8.1f} us")
    print(f"pytest_scylla_make_agent via pluggy:    {make_us:8.1f} us per call")
    print(f"pytest_scylla_known_names (judges):     {names_us:8.1f} us per call")
    print(
        f"pytest --collect-only test-001:          {statistics.median(walls):8.2f} s median"
        f" of {options.repeat} (min {min(walls):.2f} s)"
    )


if __name__ == "__main__":
    main()
