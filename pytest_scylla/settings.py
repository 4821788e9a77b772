"""Command-line options and ini keys of the plugin, read into one typed settings object.

Every option can also be set in `[tool.pytest.ini_options]` as `scylla_<name>`; the
command line wins over the ini file, the ini file over the default.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import pytest
from pydantic import BaseModel, Field

from pytest_scylla.spec.experiment import TIER_IDS

DEFAULT_MODEL = "claude-sonnet-4-6"
DEFAULT_JUDGE_MODEL = "claude-opus-4-6"
DEFAULT_RUNS = 10
DEFAULT_RUN_TIMEOUT_S = 3600.0
NO_JUDGE = "none"

AgentName = Literal["claude-code", "command", "oracle", "nop"]
SandboxName = Literal["local", "docker"]


class ScyllaSettings(BaseModel):
    tiers: list[str] | None = None  # None: every tier the experiment lists
    runs: int = DEFAULT_RUNS
    max_subtests: int | None = None
    agent: AgentName = "claude-code"
    # A template may hold a key (curl -H 'x-api-key: ...'): never in a repr or traceback.
    agent_command: str | None = Field(default=None, repr=False)
    claude_bin: str | None = None
    model: str = DEFAULT_MODEL
    run_timeout: float | None = None  # None: the experiment's own timeout, then the default
    results_dir: Path = Path("results")
    fresh: bool = False
    pass_threshold: float | None = None
    judge_model: str = DEFAULT_JUDGE_MODEL
    add_judges: list[str] = []
    sandbox: SandboxName = "local"
    docker_network: Literal["none", "host", "bridge"] = "bridge"
    docker_memory: str = "4g"
    docker_cpus: float = 2.0
    docker_pids: int = 512
    docker_disk: str = "10g"  # workspace + home of a run; the run is killed past it
    docker_credentials: bool = False
    build_image: bool = False
    rejudge: bool = False
    regenerate: bool = False
    rerun_failed: bool = False
    status: bool = False
    fake_api: Path | None = None
    tiers_dir: Path | None = None
    keep_workspace: bool = False
    judge_timeout: float = 300.0
    api_retry_budget: float = 300.0
    # Which outcomes make the exit status non-zero (None: pytest's own rule); see ci_report.
    fail_on: Literal["error", "failed", "never"] | None = None
    import_upstream: Path | None = None  # an upstream results tree to convert (upstream.py)

    @property
    def judge_models(self) -> list[str]:
        """The panel, in order, without duplicates; empty when LLM judging is off."""
        panel = [] if self.judge_model == NO_JUDGE else [self.judge_model]
        for model in self.add_judges:
            if model != NO_JUDGE and model not in panel:
                panel.append(model)
        return panel

    @property
    def judge_mode(self) -> str:
        return "llm" if self.judge_models else "commands-only"


# (option, dest, kwargs for addoption, ini type)
_OPTIONS: list[tuple[str, str, dict[str, Any], str]] = [
    (
        "--tiers",
        "tiers",
        {
            "nargs": "+",
            "metavar": "TIER",
            "help": f"tiers to run ({' '.join(TIER_IDS)}); default: all the experiment lists",
        },
        "args",
    ),
    (
        "--runs",
        "runs",
        {"type": int, "metavar": "N", "help": f"runs per sub-test (default {DEFAULT_RUNS})"},
        "string",
    ),
    (
        "--max-subtests",
        "max_subtests",
        {
            "type": int,
            "metavar": "N",
            "help": "keep only the first N sub-tests of each tier (the rest are deselected)",
        },
        "string",
    ),
    (
        "--agent",
        "agent",
        {
            "choices": ["claude-code", "command", "oracle", "nop"],
            "help": "agent to measure (default claude-code)",
        },
        "string",
    ),
    (
        "--agent-command",
        "agent_command",
        {
            "metavar": "TEMPLATE",
            "help": "command template for --agent command, with {prompt_file}, {workspace}, {model}",
        },
        "string",
    ),
    (
        "--claude-bin",
        "claude_bin",
        {
            "metavar": "PATH",
            "help": "Claude Code CLI to run (default: claude on PATH, else the one bundled in claude-agent-sdk)",
        },
        "string",
    ),
    (
        "--model",
        "model",
        {"metavar": "MODEL", "help": f"model the agent uses (default {DEFAULT_MODEL})"},
        "string",
    ),
    (
        "--run-timeout",
        "run_timeout",
        {
            "type": float,
            "metavar": "SECONDS",
            "help": f"hard timeout of one agent run (default: the experiment's, else {DEFAULT_RUN_TIMEOUT_S:.0f})",
        },
        "string",
    ),
    (
        "--results-dir",
        "results_dir",
        {"metavar": "DIR", "help": "where run records and reports go (default results/)"},
        "string",
    ),
    (
        "--fresh",
        "fresh",
        {
            "action": "store_true",
            "default": None,
            "help": "ignore runs on disk: move old results aside and start over",
        },
        "bool",
    ),
    (
        "--pass-threshold",
        "pass_threshold",
        {
            "type": float,
            "metavar": "SCORE",
            "help": "score a run needs to pass (default: the rubric's, else 0.60)",
        },
        "string",
    ),
    (
        "--judge-model",
        "judge_model",
        {
            "metavar": "MODEL",
            "help": f"LLM judge model (default {DEFAULT_JUDGE_MODEL}); 'none' scores only command: items",
        },
        "string",
    ),
    (
        "--add-judge",
        "add_judges",
        {
            "action": "append",
            "nargs": "?",
            "const": DEFAULT_JUDGE_MODEL,
            "metavar": "MODEL",
            "help": "add a judge to the panel (repeatable; model optional)",
        },
        "args",
    ),
    (
        "--sandbox",
        "sandbox",
        {"choices": ["local", "docker"], "help": "where the agent runs (default local)"},
        "string",
    ),
    (
        "--docker-network",
        "docker_network",
        {
            "choices": ["none", "host", "bridge"],
            "help": "container network (default bridge; never creates a network)",
        },
        "string",
    ),
    (
        "--docker-memory",
        "docker_memory",
        {"metavar": "SIZE", "help": "container memory limit (default 4g)"},
        "string",
    ),
    (
        "--docker-cpus",
        "docker_cpus",
        {"type": float, "metavar": "N", "help": "container CPU limit (default 2)"},
        "string",
    ),
    (
        "--docker-pids",
        "docker_pids",
        {"type": int, "metavar": "N", "help": "container process limit (default 512)"},
        "string",
    ),
    (
        "--docker-disk",
        "docker_disk",
        {
            "metavar": "SIZE",
            "help": "disk limit of a run's workspace and home together (default 10g)",
        },
        "string",
    ),
    (
        "--scylla-build-image",
        "build_image",
        {
            "action": "store_true",
            "default": None,
            "help": "rebuild the scylla-runner image before the session",
        },
        "bool",
    ),
    (
        "--scylla-rejudge",
        "rejudge",
        {
            "action": "store_true",
            "default": None,
            "help": "keep agent outputs, judge again (with --add-judge: only the new judges)",
        },
        "bool",
    ),
    (
        "--scylla-regenerate",
        "regenerate",
        {
            "action": "store_true",
            "default": None,
            "help": "no agent, no judge, no network: rebuild consensus, result.json and reports from disk",
        },
        "bool",
    ),
    (
        "--scylla-rerun-failed",
        "rerun_failed",
        {
            "action": "store_true",
            "default": None,
            "help": "also re-execute runs that were judged and failed (biases statistics)",
        },
        "bool",
    ),
    (
        "--scylla-status",
        "status",
        {
            "action": "store_true",
            "default": None,
            "help": "print what is on disk and what the same command would run and cost; runs nothing",
        },
        "bool",
    ),
    (
        "--scylla-fake-api",
        "fake_api",
        {
            "metavar": "SCRIPT",
            "help": "serve a scripted fake Messages API on loopback for this session (zero-cost dry run)",
        },
        "string",
    ),
    (
        "--scylla-tiers-dir",
        "tiers_dir",
        {"metavar": "DIR", "help": "extra tier catalogue layered over the packaged one"},
        "string",
    ),
    (
        "--scylla-judge-timeout",
        "judge_timeout",
        {"type": float, "metavar": "SECONDS", "help": "timeout of one judge request (default 300)"},
        "string",
    ),
    (
        "--scylla-api-retry-budget",
        "api_retry_budget",
        {
            "type": float,
            "metavar": "SECONDS",
            "help": "total time judges may spend retrying 429/529/5xx (default 300)",
        },
        "string",
    ),
    (
        "--scylla-keep-workspace",
        "keep_workspace",
        {
            "action": "store_true",
            "default": None,
            "help": "keep each run's workspace under the results directory",
        },
        "bool",
    ),
    (
        "--scylla-fail-on",
        "fail_on",
        {
            "choices": ["error", "failed", "never"],
            "help": "what makes the exit status non-zero: 'error' (harness/API errors, not low "
            "scores), 'failed' (both), 'never' (0 once the session completed); default: pytest's",
        },
        "string",
    ),
    (
        "--scylla-import-upstream",
        "import_upstream",
        {
            "metavar": "SRC",
            "help": "convert an upstream ProjectScylla results tree into run records under "
            "--results-dir, with aggregates and reports (SRC is only read)",
        },
        "string",
    ),
]


def add_options(parser: pytest.Parser) -> None:
    group = parser.getgroup("scylla", "pytest-scylla: measure AI coding agents")
    for flag, dest, kwargs, ini_type in _OPTIONS:
        group.addoption(flag, dest=f"scylla_{dest}", **kwargs)
        parser.addini(f"scylla_{dest}", f"default for {flag}", type=ini_type, default=None)  # type: ignore[arg-type]


def read_settings(config: pytest.Config) -> ScyllaSettings:
    values: dict[str, Any] = {}
    for _flag, dest, _kwargs, ini_type in _OPTIONS:
        value = config.getoption(f"scylla_{dest}")
        if value is None:
            value = _ini_value(config, f"scylla_{dest}", ini_type)
        if value is not None:
            values[dest] = value
    return ScyllaSettings.model_validate(values)


def explicit_options(config: pytest.Config) -> set[str]:
    """The settings the user chose (command line or ini file), as opposed to defaults."""
    chosen = set()
    for _flag, dest, _kwargs, ini_type in _OPTIONS:
        value = config.getoption(f"scylla_{dest}")
        if value is None:
            value = _ini_value(config, f"scylla_{dest}", ini_type)
        if value is not None:
            chosen.add(dest)
    return chosen


def _ini_value(config: pytest.Config, name: str, ini_type: str) -> Any:
    raw = config.getini(name)
    if raw is None or raw == [] or raw == "":
        return None
    return raw
