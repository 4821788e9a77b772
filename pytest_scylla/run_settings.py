"""The settings that produced a run, stored in its record and compared before a session runs.

A run is only comparable with runs made the same way: same agent and model, same judge
panel, same pass threshold, same sandbox, same task and same sub-test configuration. Every
record carries these settings, so a session whose options differ from the records on disk
stops before the first run instead of relabelling old runs or pooling them with new ones.

This module must stay importable without `records.py` or `runner.py` (they import it).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict

from pytest_scylla import __version__

if TYPE_CHECKING:
    from pytest_scylla.settings import ScyllaSettings
    from pytest_scylla.spec.catalogue import Catalogue, ResolvedSubTest
    from pytest_scylla.spec.load_experiment import Experiment

ThresholdSource = Literal["command-line", "rubric", "default"]
JudgeMode = Literal["llm", "commands-only"]


class RunSettings(BaseModel):
    """What a run was made with; `plugin_version` is information, never compared."""

    model_config = ConfigDict(extra="ignore")

    agent: str
    model: str
    # The template may hold a key or a private path: only its hash is kept.
    agent_command_sha256: str | None = None
    judge_mode: JudgeMode
    judge_panel: list[str]
    pass_threshold: float
    pass_threshold_source: ThresholdSource
    sandbox: str
    fixture_sha256: str
    subtest_sha256: str
    plugin_version: str | None = None


# The option a user changes to change each field, as the stop message names it.
OPTION_NAMES: dict[str, str] = {
    "agent": "--agent",
    "model": "--model",
    "agent_command_sha256": "--agent-command",
    "judge_mode": "--judge-model/--add-judge",
    "judge_panel": "--judge-model/--add-judge",
    "pass_threshold": "--pass-threshold",
    "sandbox": "--sandbox",
    "fixture_sha256": "experiment files (test.yaml, prompt, rubric, criteria, config, source)",
    "subtest_sha256": "sub-test definition (tier catalogue)",
}
# Fields a rejudge (or, for the threshold, a regenerate) may change without a new agent run.
JUDGING_FIELDS = frozenset({"judge_mode", "judge_panel", "pass_threshold"})
# Fields that say which configuration a run measured; compared by `differences`.
COMPARED_FIELDS = tuple(OPTION_NAMES)


def run_settings_for(
    settings: ScyllaSettings, experiment: Experiment, subtest: ResolvedSubTest
) -> RunSettings:
    """The settings a run of `subtest` gets under this session's options."""
    threshold = experiment.pass_threshold(settings.pass_threshold)
    source: ThresholdSource
    if settings.pass_threshold is not None:
        source = "command-line"
    elif experiment.rubric.grading.pass_threshold is not None:
        source = "rubric"
    else:
        source = "default"
    command = settings.agent_command if settings.agent == "command" else None
    return RunSettings(
        agent=settings.agent,
        model=settings.model,
        agent_command_sha256=_sha256_text(command) if command is not None else None,
        judge_mode="llm" if settings.judge_models else "commands-only",
        judge_panel=list(settings.judge_models),
        pass_threshold=threshold,
        pass_threshold_source=source,
        sandbox=settings.sandbox,
        fixture_sha256=experiment.fixture_hash,
        subtest_sha256=subtest_sha256(subtest, experiment.catalogue),
        plugin_version=__version__,
    )


def differences(on_disk: RunSettings, wanted: RunSettings) -> list[str]:
    """Names of the compared fields whose values differ, in `COMPARED_FIELDS` order."""
    return [
        name
        for name in COMPARED_FIELDS
        if _comparable(getattr(on_disk, name)) != _comparable(getattr(wanted, name))
    ]


def with_judging(recorded: RunSettings, wanted: RunSettings) -> RunSettings:
    """A rejudged run: what made its agent output stays, its judging becomes `wanted`'s.

    A rejudge may run from a results folder, where the sub-test and agent command are known
    only by their recorded hashes; recomputing them there would relabel the run.
    """
    return recorded.model_copy(
        update={
            "judge_mode": wanted.judge_mode,
            "judge_panel": list(wanted.judge_panel),
            "pass_threshold": wanted.pass_threshold,
            "pass_threshold_source": wanted.pass_threshold_source,
        }
    )


def option_names(fields: list[str]) -> list[str]:
    """The user-facing names of `fields`, each once, in order."""
    names: list[str] = []
    for field in fields:
        name = OPTION_NAMES.get(field, field)
        if name not in names:
            names.append(name)
    return names


def only_judging_differs(fields: list[str]) -> bool:
    return bool(fields) and all(field in JUDGING_FIELDS for field in fields)


def subtest_sha256(subtest: ResolvedSubTest, catalogue: Catalogue) -> str:
    """Hash of the resolved sub-test and every catalogue file it puts into a workspace.

    The same inputs `workspace.materialize` reads: an edited block, skill or agent file
    changes the hash even when the sub-test's YAML did not change.
    """
    digest = hashlib.sha256()
    definition = {
        "tier": subtest.tier,
        "id": subtest.id,
        "resources": subtest.resources.model_dump(mode="json"),
        "extra_args": list(subtest.spec.extra_args),
    }
    digest.update(json.dumps(definition, sort_keys=True).encode())
    resources = subtest.resources
    used: list[Path | None] = [catalogue.find_block(block) for block in resources.claude_md.blocks]
    used += [catalogue.find_resource("agents", agent, ".md") for agent in resources.agents]
    for skill in resources.skills:
        skill_dir = catalogue.find_resource("skills", skill, "")
        if skill_dir is not None and skill_dir.is_dir():
            used += sorted(path for path in skill_dir.rglob("*") if path.is_file())
    if resources.mcp_servers:
        for layer in reversed(catalogue.layers):
            mcp_dir = layer / "mcp"
            if mcp_dir.is_dir():
                used += sorted(path for path in mcp_dir.iterdir() if path.is_file())
    for path in used:
        if path is None:
            digest.update(b"\0missing")
            continue
        # The file's name inside its layer, not its absolute path: moving a checkout keeps it.
        digest.update(f"\0{path.parent.name}/{path.name}\0".encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _comparable(value: object) -> object:
    if isinstance(value, float):
        return round(value, 9)
    return value


def _sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()
