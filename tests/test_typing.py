"""The package is typed: PEP 561's marker ships, mypy is configured and CI runs it.

mypy itself runs in .ci/run (``python -m mypy``, config from pyproject.toml), where an error
fails CI; this file only checks that the wiring is in place, cheaply.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_py_typed_marks_the_package() -> None:
    assert (ROOT / "pytest_scylla" / "py.typed").is_file()
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "py.typed" in pyproject["tool"]["setuptools"]["package-data"]["pytest_scylla"]


def test_mypy_checks_the_package_with_typed_defs_and_ci_runs_it() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    mypy = pyproject["tool"]["mypy"]
    assert mypy["files"] == ["pytest_scylla"]
    assert mypy["disallow_untyped_defs"] is True
    assert mypy["check_untyped_defs"] is True
    dev = pyproject["project"]["optional-dependencies"]["dev"]
    assert any(requirement.startswith("mypy") for requirement in dev)
    ci = (ROOT / ".ci" / "run").read_text()
    # Before the tests, with its status kept and returned.
    assert ci.index("python -m mypy") < ci.index("python -m pytest")
    assert ci.rstrip().endswith('exit "$mypy_status"')
