"""Reading fixture files into models, confined to the experiment directory."""

from __future__ import annotations

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
