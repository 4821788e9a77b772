"""Reading fixture files into models, confined to the experiment directory."""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath
from typing import Any, TypeVar

import pydantic
import yaml

from pytest_scylla.spec.errors import SpecError, from_validation_error, from_yaml_error

ModelT = TypeVar("ModelT", bound=pydantic.BaseModel)


def read_yaml(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError(path, [("", "file not found")]) from None
    except (OSError, UnicodeDecodeError) as error:
        raise SpecError(path, [("", f"cannot read: {error}")]) from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise from_yaml_error(path, error) from None


def parse_model(path: Path, model: type[ModelT], data: Any = None) -> ModelT:
    """Validate YAML data (read from `path` unless given) against `model`."""
    if data is None:
        data = read_yaml(path)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise SpecError(
            path, [("", f"expected a mapping at the top level, got {type(data).__name__}")]
        )
    try:
        return model.model_validate(data)
    except pydantic.ValidationError as error:
        raise from_validation_error(path, error) from None


def confined_path(base: Path, relative: str, *, source_file: Path, field: str) -> Path:
    """Resolve `relative` inside `base`, refusing absolute paths, `..` and symlinks out."""
    pure = PurePosixPath(relative.replace("\\", "/"))
    if pure.is_absolute() or Path(relative).is_absolute():
        raise SpecError(
            source_file,
            [(field, f"{relative!r} is an absolute path; use a path inside the experiment")],
        )
    if ".." in pure.parts:
        raise SpecError(
            source_file, [(field, f"{relative!r} leaves the experiment directory ('..')")]
        )
    candidate = base / pure
    resolved = candidate.resolve()
    if not resolved.is_relative_to(base.resolve()):
        raise SpecError(
            source_file,
            [
                (
                    field,
                    f"{relative!r} resolves to {resolved}, outside the experiment directory (symlink)",
                )
            ],
        )
    return candidate


def read_confined_text(
    base: Path, relative: str, *, source_file: Path, field: str
) -> tuple[Path, str]:
    path = confined_path(base, relative, source_file=source_file, field=field)
    if not path.is_file():
        raise SpecError(source_file, [(field, f"{relative!r} does not exist in {base}")])
    try:
        return path, path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise SpecError(path, [("", f"cannot read: {error}")]) from None


def symlinks_leaving(
    directory: Path, source_dir: Path | None, others: list[Path]
) -> list[tuple[str, str]]:
    """(field, reason) for each symlink in the experiment's fixture material that leads out.

    The material is the shipped repository (`source_dir`) and `others` (files or folders:
    the solution, the experiment's own tiers, `expected/`...); the rest of the folder is not
    looked at (a results folder kept there holds the agents' links). A link in the shipped
    repository must also stay inside that repository and be relative: it is copied into
    every workspace as it is, where an absolute or outward link would point at the host.
    `.git` folders are skipped: they are never copied.
    """
    top = os.path.realpath(directory)
    repository = os.path.realpath(source_dir) if source_dir is not None else None
    problems: list[tuple[str, str]] = []
    links: list[str] = []
    for tree in [*([source_dir] if source_dir is not None else []), *others]:
        if os.path.islink(tree):
            links.append(str(tree))
        if not os.path.isdir(tree) or os.path.islink(tree):
            continue
        for folder, subfolders, files in os.walk(tree):
            subfolders[:] = sorted(name for name in subfolders if name != ".git")
            links += [
                os.path.join(folder, name)
                for name in sorted(subfolders + files)
                if os.path.islink(os.path.join(folder, name))
            ]
    for path in sorted(set(links)):
        target = os.readlink(path)
        resolved = os.path.realpath(path)
        shown = os.path.relpath(path, directory)
        parent = os.path.realpath(os.path.dirname(path))
        leaves_repository = (
            repository is not None
            and _within(parent, repository)
            and (os.path.isabs(target) or not _within(resolved, repository))
        )
        if leaves_repository:
            problems.append(
                ("source.path", f"symlink {shown!r} -> {target!r} leaves the shipped repository")
            )
        elif not _within(resolved, top):
            problems.append(
                ("", f"symlink {shown!r} -> {target!r} leaves the experiment directory")
            )
    return problems


def _within(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)
