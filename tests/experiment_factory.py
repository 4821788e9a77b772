"""Write small, valid experiments into a temp folder; tests then break one thing at a time."""

from __future__ import annotations

import textwrap
from pathlib import Path

import yaml

RUBRIC = {
    "categories": {
        "functional": {
            "weight": 0.7,
            "scoring_type": "checklist",
            "items": [
                {
                    "id": "F1",
                    "check": "done.txt exists",
                    "points": 1.0,
                    "command": "test -f done.txt",
                },
                {
                    "id": "F2",
                    "check": "done.txt says ok",
                    "points": 1.0,
                    "command": "grep -qx ok done.txt",
                },
            ],
        },
        "quality": {
            "weight": 0.3,
            "scoring_type": "checklist",
            "items": [
                {"id": "Q1", "check": "no stray files", "points": 1.0, "command": "test ! -e junk"}
            ],
        },
    },
    "grading": {"pass_threshold": 0.6},
}


def write_experiment(
    root: Path,
    name: str = "exp-ok",
    *,
    test_yaml: dict | None = None,
    rubric: dict | str | None = None,
    tiers: list[str] | None = None,
) -> Path:
    """A self-contained experiment: repo/, solution/solve.sh writing done.txt, a rubric."""
    directory = root / name
    (directory / "expected").mkdir(parents=True)
    (directory / "repo").mkdir()
    (directory / "repo" / "README.md").write_text("start\n")
    (directory / "solution").mkdir()
    (directory / "solution" / "solve.sh").write_text("printf 'ok\\n' > done.txt\n")
    (directory / "prompt.md").write_text("Write ok into done.txt.\n")
    (directory / "expected" / "criteria.md").write_text("R001: done.txt holds ok\n")
    spec = {
        "id": name,
        "name": f"Experiment {name}",
        "source": {"path": "repo"},
        "task": {"prompt_file": "prompt.md", "timeout_seconds": 60},
        "validation": {
            "criteria_file": "expected/criteria.md",
            "rubric_file": "expected/rubric.yaml",
        },
        "tiers": tiers or ["T0"],
        "solution": "solution/solve.sh",
    }
    spec.update(test_yaml or {})
    (directory / "test.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    rubric_text = (
        rubric if isinstance(rubric, str) else yaml.safe_dump(rubric or RUBRIC, sort_keys=False)
    )
    (directory / "expected" / "rubric.yaml").write_text(textwrap.dedent(rubric_text))
    return directory


def write_tiers(root: Path, subtests: dict[str, dict[str, dict]]) -> Path:
    """A `_tiers/` catalogue layer beside the experiments: {"T0": {"00-a": {...}}}."""
    layer = root / "_tiers"
    for tier, entries in subtests.items():
        (layer / tier).mkdir(parents=True, exist_ok=True)
        for subtest_id, spec in entries.items():
            (layer / tier / f"{subtest_id}.yaml").write_text(yaml.safe_dump(spec))
    return layer


def write_state_logging_experiment(root: Path, name: str, log: Path) -> Path:
    """An experiment whose one check appends "before" or "after" (whether the oracle's file
    is there) to `log`, a host file: each line is one run of the check. The host file is
    hidden by a bubblewrap sandbox, so callers run without it (SCYLLA_LOCAL_ISOLATION=none)."""
    # Absolute path: the check's environment is scrubbed.
    command = f"(test -f done.txt && echo after || echo before) >> {log}"
    return write_experiment(
        root, name, test_yaml={"checks": [{"name": "state", "command": command}]}
    )


def shipped_t0(runs: int, subtests: int) -> list[str]:
    """The arguments of a session over the shipped experiments/test-001 (run from a folder
    holding it): the first `subtests` sub-tests of its tier T0, `runs` runs each."""
    return [
        "experiments/test-001",
        *("--tiers", "T0"),
        *("--runs", str(runs)),
        *("--max-subtests", str(subtests)),
    ]
