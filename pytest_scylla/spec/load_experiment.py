"""Load one experiment directory into a validated, self-consistent `Experiment`."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from pytest_scylla.spec.catalogue import Catalogue, catalogue_layers, load_catalogue
from pytest_scylla.spec.errors import SpecError
from pytest_scylla.spec.experiment import ExperimentConfig, ExperimentSpec
from pytest_scylla.spec.loading import (
    confined_path,
    parse_model,
    read_confined_text,
    symlinks_leaving,
)
from pytest_scylla.spec.rubric import DEFAULT_PASS_THRESHOLD, NormalizedRubric, Rubric

DEFAULT_DRY_RUN_FILE = "dry-run.yaml"
CONFIG_FILE = "config.yaml"


@dataclass(frozen=True)
class Experiment:
    directory: Path
    test_file: Path
    spec: ExperimentSpec
    config: ExperimentConfig
    prompt: str
    criteria: str
    rubric: Rubric
    normalized_rubric: NormalizedRubric
    source_dir: Path | None  # a repository shipped inside the experiment
    solution: Path | None
    dry_run_script: Path | None
    catalogue: Catalogue
    fixture_hash: str  # hash of every fixture file: a changed task shows in the manifest

    @property
    def id(self) -> str:
        return self.spec.id

    def timeout_seconds(self, command_line: float | None, default: float) -> float:
        """The command line wins, then config.yaml, then test.yaml, then the default."""
        for candidate in (
            command_line,
            self.config.timeout_seconds,
            self.spec.task.timeout_seconds,
        ):
            if candidate is not None:
                return candidate
        return default

    def pass_threshold(self, command_line: float | None) -> float:
        if command_line is not None:
            return command_line
        if self.rubric.grading.pass_threshold is not None:
            return self.rubric.grading.pass_threshold
        return DEFAULT_PASS_THRESHOLD


@dataclass(frozen=True)
class JudgingFiles:
    """What a judge reads of an experiment (an experiment directory or its saved copy)."""

    config_file: Path  # may not exist: config.yaml is optional
    config: ExperimentConfig
    prompt_file: Path
    prompt: str
    criteria_file: Path
    criteria: str
    rubric_file: Path
    rubric: Rubric


def read_judging_files(directory: Path, spec: ExperimentSpec, test_file: Path) -> JudgingFiles:
    """config.yaml, the prompt, the criteria and the rubric, each confined to directory."""
    config_file = directory / CONFIG_FILE
    config = (
        parse_model(config_file, ExperimentConfig) if config_file.is_file() else ExperimentConfig()
    )
    prompt_file, prompt = read_confined_text(
        directory, spec.task.prompt_file, source_file=test_file, field="task.prompt_file"
    )
    criteria_file, criteria = read_confined_text(
        directory,
        spec.validation.criteria_file,
        source_file=test_file,
        field="validation.criteria_file",
    )
    rubric_file = confined_path(
        directory,
        spec.validation.rubric_file,
        source_file=test_file,
        field="validation.rubric_file",
    )
    if not rubric_file.is_file():
        raise SpecError(
            test_file,
            [("validation.rubric_file", f"{spec.validation.rubric_file!r} does not exist")],
        )
    rubric = parse_model(rubric_file, Rubric)
    return JudgingFiles(
        config_file, config, prompt_file, prompt, criteria_file, criteria, rubric_file, rubric
    )


def load_experiment(test_file: Path, extra_tiers_dir: Path | None = None) -> Experiment:
    directory = test_file.parent
    spec = parse_model(test_file, ExperimentSpec)
    judging = read_judging_files(directory, spec, test_file)
    config_file, config = judging.config_file, judging.config
    prompt_file, prompt = judging.prompt_file, judging.prompt
    criteria_file, criteria = judging.criteria_file, judging.criteria
    rubric_file, rubric = judging.rubric_file, judging.rubric

    source_dir = None
    if spec.source.path is not None:
        source_dir = confined_path(
            directory, spec.source.path, source_file=test_file, field="source.path"
        )
        if not source_dir.is_dir():
            raise SpecError(
                test_file, [("source.path", f"{spec.source.path!r} is not a directory")]
            )
    solution = None
    if spec.solution is not None:
        solution = confined_path(directory, spec.solution, source_file=test_file, field="solution")
        if not solution.exists():
            raise SpecError(test_file, [("solution", f"{spec.solution!r} does not exist")])
    dry_run = None
    if spec.dry_run is not None:
        dry_run = confined_path(directory, spec.dry_run, source_file=test_file, field="dry_run")
        if not dry_run.is_file():
            raise SpecError(test_file, [("dry_run", f"{spec.dry_run!r} does not exist")])
    elif (directory / DEFAULT_DRY_RUN_FILE).is_file():
        dry_run = directory / DEFAULT_DRY_RUN_FILE

    # Every file of the experiment may reach the agent or the judge: no link may lead out.
    material = [prompt_file, criteria_file, rubric_file, config_file, directory / "expected"]
    material += [path for path in (solution, dry_run, directory / "tiers") if path is not None]
    problems = symlinks_leaving(directory, source_dir, material)
    if problems:
        raise SpecError(test_file, problems)
    catalogue = load_catalogue(catalogue_layers(directory, extra_tiers_dir))
    for tier in spec.tiers:
        if tier not in catalogue.tier_info and not catalogue.subtests(tier):
            raise SpecError(
                test_file, [("tiers", f"tier {tier} has no sub-tests in {catalogue.layers}")]
            )

    fixture_files = [test_file, rubric_file, prompt_file, criteria_file]
    if config_file.is_file():
        fixture_files.append(config_file)
    digest = hashlib.sha256()
    for path in fixture_files:
        digest.update(path.read_bytes())
    # The shipped repository and solution are part of the task too: a change must show.
    for tree in (source_dir, solution):
        if tree is not None:
            for path in sorted(tree.rglob("*")) if tree.is_dir() else [tree]:
                if ".git" in path.parts:
                    continue
                if path.is_symlink():  # a link counts as its target's name, never followed
                    digest.update(path.relative_to(directory).as_posix().encode())
                    digest.update(b"link:" + os.fsencode(os.readlink(path)))
                elif path.is_file():
                    digest.update(path.relative_to(directory).as_posix().encode())
                    digest.update(path.read_bytes())
    return Experiment(
        directory=directory,
        test_file=test_file,
        spec=spec,
        config=config,
        prompt=prompt,
        criteria=criteria,
        rubric=rubric,
        normalized_rubric=rubric.normalized(),
        source_dir=source_dir,
        solution=solution,
        dry_run_script=dry_run,
        catalogue=catalogue,
        fixture_hash=digest.hexdigest(),
    )
