"""Command-line options and ini keys of the plugin, read into one typed settings object.

Each option is declared once, as a field of `ScyllaSettings`: its type, default and
constraints (pydantic) are its validation, and its `Flag` says how it is spelled on the
command line. Every option can also be set in `[tool.pytest.ini_options]` as
`scylla_<field>`; the command line wins over the ini file, the ini file over the default.
Both go through the same validation, and a bad value stops the session before any run.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import pytest
from pydantic import BaseModel, Field, ValidationError, field_validator

from pytest_scylla.spec.experiment import TIER_IDS

DEFAULT_MODEL = "claude-sonnet-4-6"
DEFAULT_JUDGE_MODEL = "claude-opus-4-6"
DEFAULT_RUNS = 10
DEFAULT_RUN_TIMEOUT_S = 3600.0
NO_JUDGE = "none"
INI_PREFIX = "scylla_"
# A value of --tiers: one tier or a comma-separated list ("T0", "t1", "T0,T1").
TIER_LIKE = re.compile(r"^[Tt]\d+(,[Tt]\d+)*,?$")


@dataclass(frozen=True)
class Flag:
    """How a settings field is spelled on the command line (extra argparse keywords aside)."""

    flag: str
    help: str
    metavar: str | None = None
    argparse: dict[str, Any] = field(default_factory=dict)

    @property
    def is_switch(self) -> bool:
        return self.argparse.get("action") == "store_true"


def _switch(flag: str, help: str) -> Flag:
    # default None, not False: "not given" must fall through to the ini file.
    return Flag(flag, help, argparse={"action": "store_true", "default": None})


class ScyllaSettings(BaseModel):
    tiers: Annotated[
        list[str] | None,
        Flag(
            "--tiers",
            f"tiers to run ({' '.join(TIER_IDS)}; also T0,T1); default: all the experiment lists",
            metavar="TIER",
            argparse={"nargs": "+"},
        ),
    ] = None  # None: every tier the experiment lists
    runs: Annotated[
        int, Field(gt=0), Flag("--runs", f"runs per sub-test (default {DEFAULT_RUNS})", "N")
    ] = DEFAULT_RUNS
    max_subtests: Annotated[
        int | None,
        Field(gt=0),
        Flag(
            "--max-subtests",
            "keep only the first N sub-tests of each tier (the rest are deselected)",
            "N",
        ),
    ] = None
    # Any name a pytest_scylla_make_agent implementation answers (builtins.py has ours).
    agent: Annotated[
        str,
        Flag(
            "--agent",
            "agent to measure: claude-code (default), command, oracle, nop, or a plugin's",
            "NAME",
        ),
    ] = "claude-code"
    # A template may hold a key (curl -H 'x-api-key: ...'): never in a repr or traceback.
    agent_command: Annotated[
        str | None,
        Field(repr=False),
        Flag(
            "--agent-command",
            "command template for --agent command, with {prompt_file}, {workspace}, {model}",
            "TEMPLATE",
        ),
    ] = None
    claude_bin: Annotated[
        str | None,
        Flag(
            "--claude-bin",
            "Claude Code CLI to run (default: claude on PATH, else the one bundled in claude-agent-sdk)",
            "PATH",
        ),
    ] = None
    model: Annotated[
        str,
        Flag(
            "--model",
            f"model the agent uses (default {DEFAULT_MODEL}; short names such as sonnet-4-5 work)",
            "MODEL",
        ),
    ] = DEFAULT_MODEL
    run_timeout: Annotated[
        float | None,
        Field(gt=0),
        Flag(
            "--run-timeout",
            f"hard timeout of one agent run (default: the experiment's, else {DEFAULT_RUN_TIMEOUT_S:.0f})",
            "SECONDS",
        ),
    ] = None  # None: the experiment's own timeout, then the default
    results_dir: Annotated[
        Path,
        Flag("--results-dir", "where run records and reports go (default results/)", "DIR"),
    ] = Path("results")
    fresh: Annotated[
        bool, _switch("--fresh", "ignore runs on disk: move old results aside and start over")
    ] = False
    pass_threshold: Annotated[
        float | None,
        Field(ge=0, le=1),
        Flag(
            "--pass-threshold",
            "score a run needs to pass (default: the rubric's, else 0.60)",
            "SCORE",
        ),
    ] = None
    judge_model: Annotated[
        str,
        Flag(
            "--judge-model",
            f"LLM judge model (default {DEFAULT_JUDGE_MODEL}); 'none' scores only command: items",
            "MODEL",
        ),
    ] = DEFAULT_JUDGE_MODEL
    add_judges: Annotated[
        list[str],
        Flag(
            "--add-judge",
            "add a judge to the panel (repeatable; model optional)",
            "MODEL",
            argparse={"action": "append", "nargs": "?", "const": DEFAULT_JUDGE_MODEL},
        ),
    ] = []
    judge_backend: Annotated[
        Literal["api", "cli", "auto"],
        Flag(
            "--judge-backend",
            "how judges reach the model: api (anthropic SDK: ANTHROPIC_API_KEY or "
            "ANTHROPIC_AUTH_TOKEN), cli (the Claude Code CLI: any credential it takes, a "
            "Claude login included), auto (default: api when it has a key, else cli)",
            argparse={"choices": ["api", "cli", "auto"]},
        ),
    ] = "auto"
    # Any name a pytest_scylla_make_sandbox implementation answers (builtins.py has ours).
    sandbox: Annotated[
        str,
        Flag("--sandbox", "where the agent runs: local (default), docker, or a plugin's", "NAME"),
    ] = "local"
    docker_network: Annotated[
        Literal["auto", "none", "host", "bridge"],
        Flag(
            "--docker-network",
            "container network: auto (default: none, unless the claude-code agent must reach "
            "the API: host for one on loopback, else bridge), none, host or bridge; never "
            "creates a network",
            argparse={"choices": ["auto", "none", "host", "bridge"]},
        ),
    ] = "auto"
    docker_memory: Annotated[
        str, Flag("--docker-memory", "container memory limit (default 4g)", "SIZE")
    ] = "4g"
    docker_cpus: Annotated[
        float, Field(gt=0), Flag("--docker-cpus", "container CPU limit (default 2)", "N")
    ] = 2.0
    docker_pids: Annotated[
        int, Field(gt=0), Flag("--docker-pids", "container process limit (default 512)", "N")
    ] = 512
    # workspace + home of a run; the run is killed past it
    docker_disk: Annotated[
        str,
        Flag(
            "--docker-disk",
            "disk limit of a run's workspace and home together (default 10g)",
            "SIZE",
        ),
    ] = "10g"
    # The Claude login is mounted anyway when it is the agent's only credential.
    docker_credentials: Annotated[
        bool,
        _switch(
            "--docker-credentials",
            "mount the Claude login (~/.claude/.credentials.json) read-only into each container "
            "(automatic when it is the only credential)",
        ),
    ] = False
    build_image: Annotated[
        bool, _switch("--scylla-build-image", "rebuild the scylla-runner image before the session")
    ] = False
    rejudge: Annotated[
        bool,
        _switch(
            "--scylla-rejudge",
            "keep agent outputs, judge again (with --add-judge: only the new judges)",
        ),
    ] = False
    regenerate: Annotated[
        bool,
        _switch(
            "--scylla-regenerate",
            "no agent, no judge, no network: rebuild consensus, result.json and reports from disk",
        ),
    ] = False
    rerun_failed: Annotated[
        bool,
        _switch(
            "--scylla-rerun-failed",
            "also re-execute runs that were judged and failed (biases statistics)",
        ),
    ] = False
    status: Annotated[
        bool,
        _switch(
            "--scylla-status",
            "print what is on disk and what the same command would run and cost; runs nothing",
        ),
    ] = False
    fake_api: Annotated[
        Path | None,
        Flag(
            "--scylla-fake-api",
            "serve a scripted fake Messages API on loopback for this session (zero-cost dry run)",
            "SCRIPT",
        ),
    ] = None
    tiers_dir: Annotated[
        Path | None,
        Flag("--scylla-tiers-dir", "extra tier catalogue layered over the packaged one", "DIR"),
    ] = None
    keep_workspace: Annotated[
        bool,
        _switch("--scylla-keep-workspace", "keep each run's workspace under the results directory"),
    ] = False
    judge_timeout: Annotated[
        float,
        Field(gt=0),
        Flag("--scylla-judge-timeout", "timeout of one judge request (default 300)", "SECONDS"),
    ] = 300.0
    api_retry_budget: Annotated[
        float,
        Field(ge=0),
        Flag(
            "--scylla-api-retry-budget",
            "total time judges may spend retrying 429/529/5xx (default 300)",
            "SECONDS",
        ),
    ] = 300.0
    # Which outcomes make the exit status non-zero (None: pytest's own rule); see ci_report.
    fail_on: Annotated[
        Literal["error", "failed", "never"] | None,
        Flag(
            "--scylla-fail-on",
            "what makes the exit status non-zero: 'error' (harness/API errors, not low "
            "scores), 'failed' (both), 'never' (0 once the session completed); default: pytest's",
            argparse={"choices": ["error", "failed", "never"]},
        ),
    ] = None
    import_upstream: Annotated[
        Path | None,
        Flag(
            "--scylla-import-upstream",
            "convert an upstream ProjectScylla results tree into run records under "
            "--results-dir, with aggregates and reports (SRC is only read)",
            "SRC",
        ),
    ] = None  # an upstream results tree to convert (upstream.py)
    allow_unpriced_model: Annotated[
        bool,
        _switch(
            "--scylla-allow-unpriced-model",
            "accept a model missing from the price table (its cost is recorded as 0)",
        ),
    ] = False
    # This session's spend (agents + judges) at which the runs not started are skipped (budget.py).
    max_cost: Annotated[
        float | None,
        Field(ge=0),
        Flag(
            "--max-cost",
            "stop starting runs once this session spent USD on agents and judges "
            "(the rest are skipped; an experiment's config.yaml max_cost_usd applies too)",
            "USD",
        ),
    ] = None

    @field_validator("tiers", mode="before")
    @classmethod
    def _known_tiers(cls, value: Any) -> Any:
        """`T0,T1` and `t0` are accepted; an unknown tier is an error, not 0 items."""
        if value is None:
            return None
        given = [value] if isinstance(value, str) else list(value)
        tiers: list[str] = []
        for part in (piece.strip() for entry in given for piece in str(entry).split(",")):
            if not part:
                continue
            tier = part.upper()
            if tier not in TIER_IDS:
                raise ValueError(f"unknown tier {part!r} (known: {', '.join(TIER_IDS)})")
            if tier not in tiers:
                tiers.append(tier)
        return tiers

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


def option_flags() -> dict[str, Flag]:
    """Settings field -> its flag, for every field that is an option."""
    flags = {}
    for name, info in ScyllaSettings.model_fields.items():
        flag = next((meta for meta in info.metadata if isinstance(meta, Flag)), None)
        if flag is not None:
            flags[name] = flag
    return flags


def _ini_type(name: str, flag: Flag) -> str:
    if flag.is_switch:
        return "bool"
    if name in ("tiers", "add_judges"):
        return "args"
    return "string"


def add_options(parser: pytest.Parser) -> None:
    group = parser.getgroup("scylla", "pytest-scylla: measure AI coding agents")
    for name, flag in option_flags().items():
        kwargs = dict(flag.argparse)
        if flag.metavar and not flag.is_switch:
            kwargs["metavar"] = flag.metavar
        group.addoption(flag.flag, dest=f"{INI_PREFIX}{name}", help=flag.help, **kwargs)
        parser.addini(
            f"{INI_PREFIX}{name}",
            f"default for {flag.flag}",
            type=_ini_type(name, flag),  # type: ignore[arg-type]
            default=None,
        )


def _chosen_values(config: pytest.Config) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name in option_flags():
        value = config.getoption(f"{INI_PREFIX}{name}")
        if value is None:
            value = _ini_value(config, f"{INI_PREFIX}{name}")
        if value is not None:
            values[name] = value
    return values


def read_settings(config: pytest.Config) -> ScyllaSettings:
    """The validated settings; a bad value raises ValueError with one line naming the option."""
    values = _chosen_values(config)
    try:
        settings = ScyllaSettings.model_validate(values)
    except ValidationError as error:
        raise ValueError(describe_errors(error, values)) from None
    return with_full_model_names(settings)


def with_full_model_names(settings: ScyllaSettings) -> ScyllaSettings:
    """Upstream's short names (`opus-4-5`) as the API's ids (`claude-opus-4-5`)."""
    from pytest_scylla.models import resolve_model_name

    def full(model: str) -> str:
        return model if model == NO_JUDGE else resolve_model_name(model)

    return settings.model_copy(
        update={
            "model": full(settings.model),
            "judge_model": full(settings.judge_model),
            "add_judges": [full(model) for model in settings.add_judges],
        }
    )


def describe_errors(error: ValidationError, values: dict[str, Any]) -> str:
    """One line: `--runs -3: must be greater than 0; --tiers ...`."""
    flags = option_flags()
    problems = []
    for problem in error.errors():
        name = str(problem["loc"][0]) if problem["loc"] else ""
        flag = flags[name].flag if name in flags else name
        message = str(problem["msg"]).removeprefix("Value error, ")
        message = message.replace("Input should be", "must be")
        given = values.get(name, problem.get("input"))
        problems.append(f"{flag} {_shown(given)} (ini {INI_PREFIX}{name}): {message}")
    return "; ".join(problems)


def _shown(value: Any) -> str:
    if isinstance(value, list):
        return " ".join(map(str, value))
    return str(value)


def explicit_options(config: pytest.Config) -> set[str]:
    """The settings the user chose (command line or ini file), as opposed to defaults."""
    return set(_chosen_values(config))


def _ini_value(config: pytest.Config, name: str) -> Any:
    raw = config.getini(name)
    if raw is None or raw == [] or raw == "":
        return None
    return raw


def split_swallowed_paths(args: list[str]) -> list[str]:
    """The command line with a multi-value option's list ended where a path begins.

    argparse gives `--tiers` (nargs +) every word up to the next option, so
    `--tiers T0 experiments/test-001` made the path a tier; `--add-judge PATH` (nargs ?)
    made it a judge. A word that is not a tier ends `--tiers`, an existing path (or a
    node id) is never a judge: both are put back as the spelled `--opt=value` form, which
    argparse gives exactly one value, followed by the words it must not take.
    """
    rewritten: list[str] = []
    index = 0
    while index < len(args):
        word = args[index]
        if word == "--tiers":
            values = []
            index += 1
            while index < len(args) and TIER_LIKE.match(args[index]):
                values.append(args[index].rstrip(","))
                index += 1
            rewritten.append(f"--tiers={','.join(values)}" if values else word)
            continue
        if word == "--add-judge" and index + 1 < len(args) and _is_path(args[index + 1]):
            rewritten.append(f"--add-judge={DEFAULT_JUDGE_MODEL}")
            index += 1
            continue
        if word == "--":
            rewritten.extend(args[index:])
            break
        rewritten.append(word)
        index += 1
    return rewritten


def _is_path(word: str) -> bool:
    if word.startswith("-"):
        return False
    return "::" in word or Path(word.split("::", 1)[0]).exists()
