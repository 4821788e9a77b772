"""Errors that name the file, the field and the reason, so a user can fix a fixture fast."""

from __future__ import annotations

from pathlib import Path

import pydantic
import yaml


class SpecError(Exception):
    """A fixture file is malformed; str() is one line per problem: `file: field: reason`."""

    def __init__(self, path: Path | str, problems: list[tuple[str, str]]) -> None:
        self.path = str(path)
        self.problems = problems  # (field, reason) pairs
        super().__init__(self.render())

    def render(self) -> str:
        return "\n".join(
            f"{self.path}: {field}: {reason}" if field else f"{self.path}: {reason}"
            for field, reason in self.problems
        )


def field_path(loc: tuple[int | str, ...]) -> str:
    """Render a pydantic error location as `categories.functional.items[1].points`."""
    rendered = ""
    for part in loc:
        if isinstance(part, int):
            rendered += f"[{part}]"
        else:
            rendered += f".{part}" if rendered else str(part)
    return rendered


def from_validation_error(path: Path | str, error: pydantic.ValidationError) -> SpecError:
    problems = []
    for item in error.errors():
        loc = tuple(p for p in item["loc"] if p not in ("function-after", "function-before"))
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            message = "unknown field"
        problems.append((field_path(loc), message))
    return SpecError(path, problems)


def from_yaml_error(path: Path | str, error: yaml.YAMLError) -> SpecError:
    mark = getattr(error, "problem_mark", None)
    problem = getattr(error, "problem", None) or str(error)
    where = f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    return SpecError(path, [(where, f"invalid YAML: {problem}")])
