"""Where results live, and the one loader that reads run records back.

```
<results>/<experiment>/<tier>/<sub-test>/run-NN/run_result.json   one run
                                             run-NN/attempts/<k>/    earlier attempts
<results>/<experiment>/<tier>/<sub-test>/result.json              aggregates
```
The runner, the aggregates and recovery all read records through `load_run_record`, so a
damaged file, an older schema or a record copied into another run's folder is handled the
same way everywhere: migrated, or reported by name and not counted.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from pydantic import ValidationError

from pytest_scylla.record_head import RunHead
from pytest_scylla.records import (
    RUN_RECORD_FILE,
    SCHEMA_VERSION,
    DamagedRecord,
    RunRecord,
    atomic_write_text,
    parse_record,
)

AGGREGATE_FILE = "result.json"
REPORT_FILES = ("report.md", "report.html")
ATTEMPTS_DIR = "attempts"
# --scylla-keep-workspace: the copy of the agent's files; the agent names everything in it.
KEPT_WORKSPACE_DIR = "workspace"
ATTEMPT_RECORD_FILE = "record.json"  # not run_result.json: tools that glob for it must not
AGENT_DIR = "agent"
CHECKS_FILE = "checks.json"
DIFF_FILE = "workspace.diff"
MANIFEST_FILE = "config_manifest.json"
JUDGES_DIR = "judges"
ERROR_LOG = "error.log"
_RUN_FOLDER = re.compile(r"run-(\d+)")
_SCHEMA_VERSION = re.compile(rb'"schema_version"\s*:\s*(\d+)')
_HEAD_BYTES = 256


@dataclass(frozen=True)
class RunKey:
    """Which run a folder holds, from its path: what a record inside must say too."""

    experiment_id: str
    tier: str
    subtest: str
    run: int

    @classmethod
    def of(cls, record: RunRecord | RunHead) -> RunKey:
        return cls(record.experiment_id, record.tier, record.subtest, record.run)

    def label(self) -> str:
        return f"{self.experiment_id} {self.tier}/{self.subtest} run {self.run}"


class MisplacedRecord(DamagedRecord):
    """A record whose content names another run than its folder (copied or moved by hand)."""


def run_dir(results_dir: Path, experiment_id: str, tier: str, subtest: str, run: int) -> Path:
    """The folder of one run's files: `<results>/<experiment>/<tier>/<sub-test>/run-NN`."""
    return results_dir / experiment_id / tier / subtest / f"run-{run:02d}"


def experiment_dir(results_dir: Path, experiment_id: str) -> Path:
    return results_dir / experiment_id


def key_from_path(record_path: Path) -> RunKey | None:
    """The run a `.../<experiment>/<tier>/<sub-test>/run-NN/run_result.json` path names."""
    folder = record_path.parent
    match = _RUN_FOLDER.fullmatch(folder.name)
    if match is None or len(folder.parents) < 3:
        return None
    subtest_dir = folder.parent
    tier_dir = subtest_dir.parent
    return RunKey(tier_dir.parent.name, tier_dir.name, subtest_dir.name, int(match.group(1)))


def load_run_record(path: Path, expected: RunKey | None = None) -> RunRecord | None:
    """The record at path (migrated to the current schema), None when there is none.

    Raises DamagedRecord (unreadable, not a record), MisplacedRecord (it names another run
    than `expected`, by default the run its path names) or NewerSchema.
    """
    return read_run_record(path, expected).record


@dataclass(frozen=True)
class StoredRecord:
    """A record as read from its file: the model, and the file's text when the model is
    exactly what that text says (current schema, nothing migrated), so it can be passed on
    without dumping the model again."""

    record: RunRecord | None
    text: str | None = None


def read_run_record(path: Path, expected: RunKey | None = None) -> StoredRecord:
    """load_run_record, keeping the file's text of a current-schema record."""
    stored = _parse(path)
    record = stored.record
    if record is None:
        return stored
    wanted = expected or key_from_path(path)
    if wanted is not None and RunKey.of(record) != wanted:
        raise MisplacedRecord(
            f"{path}: the record is of {RunKey.of(record).label()}, not of {wanted.label()} "
            "(copied or moved?); not counted"
        )
    return stored


# How dump_record starts a record of the current schema. Such a record needs no migration,
# and pydantic validates it from the bytes in one step, about twice as fast as json.loads
# and model_validate: a resume reads every record of the results folder.
_CURRENT_SCHEMA_START = f'{{\n  "schema_version": {SCHEMA_VERSION},\n'.encode()


def _parse(path: Path) -> StoredRecord:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        if path.is_symlink():  # a dangling symlink is damage, not absence
            raise DamagedRecord(f"{path}: damaged run record (FileNotFoundError)") from None
        return StoredRecord(None)
    except OSError as error:  # a directory in its place, unreadable
        raise DamagedRecord(f"{path}: damaged run record ({error.__class__.__name__})") from error
    current = _as_current(raw, RunRecord)
    if current is not None:
        return StoredRecord(*current)
    # Older, damaged or written some other way: parse_record migrates or names the damage.
    return StoredRecord(parse_record(raw, path))


_Model = TypeVar("_Model", RunRecord, RunHead)


def _as_current(raw: bytes, model: type[_Model]) -> tuple[_Model, str] | None:
    """`raw` as `model`, and its text, when it is a current-schema record as dump_record
    writes it; None for anything else."""
    if not raw.startswith(_CURRENT_SCHEMA_START):
        return None
    try:
        text = raw.decode("utf-8")
        record = model.model_validate_json(text)
    except (ValueError, ValidationError):
        return None
    if record.schema_version != SCHEMA_VERSION:  # a second key saying otherwise
        return None
    return record, text


@dataclass(frozen=True)
class StoredHead:
    """A record's head (record_head.py) and its file's whole text, which stays on disk as
    it is: a head is never written."""

    head: RunHead
    text: str


def read_run_head(path: Path, expected: RunKey) -> StoredHead | None:
    """The head of the current-schema record of run `expected` at `path`; None for anything
    else (no file, damage, an older schema, another run), which read_run_record tells apart.

    The head skips the record's evidence unvalidated: take it only for a record a full read
    has found sound since it was last written (see replay.py).
    """
    try:
        current = _as_current(path.read_bytes(), RunHead)
    except OSError:
        return None
    if current is None or RunKey.of(current[0]) != expected:
        return None
    return StoredHead(*current)


def record_paths(experiment_path: Path) -> list[Path]:
    """Every run record of an experiment's results folder (not the earlier attempts)."""
    return sorted(experiment_path.glob(f"T*/*/run-*/{RUN_RECORD_FILE}"))


@dataclass
class LoadedRecords:
    records: list[RunRecord] = field(default_factory=list)
    damaged: list[str] = field(default_factory=list)  # "path: why", not counted


def load_experiment_records(experiment_path: Path) -> LoadedRecords:
    """The experiment's run records; damaged or misplaced ones are named, not counted.

    A newer schema is not a damage to report and skip: NewerSchema propagates.
    """
    loaded = LoadedRecords()
    for path in record_paths(experiment_path):
        try:
            record = load_run_record(path)
        except DamagedRecord as damaged:
            loaded.damaged.append(str(damaged))
            continue
        if record is not None:
            loaded.records.append(record)
    return loaded


def newer_schema_records(results_dir: Path) -> list[str]:
    """Records under results_dir written by a newer pytest-scylla, as 'path (version N)'.

    Only the number is read (a regular expression over the bytes, then a real parse of the
    few that look newer), so scanning a large results folder stays cheap.
    """
    found: list[str] = []
    if not results_dir.is_dir():
        return found
    for path in results_dir.glob(f"*/T*/*/run-*/{RUN_RECORD_FILE}"):
        try:
            with path.open("rb") as handle:
                raw = handle.read(_HEAD_BYTES)
                match = _SCHEMA_VERSION.search(raw)
                # dump_record writes the number first: the rest is read only when the head
                # does not show it whole, or shows a newer one (parsed below).
                if match is None or match.end() >= len(raw):
                    raw += handle.read()
                    match = _SCHEMA_VERSION.search(raw)
                if match is None or int(match.group(1)) <= SCHEMA_VERSION:
                    continue
                raw += handle.read()
        except OSError:
            continue
        try:
            data = json.loads(raw)
        except ValueError:
            continue
        version = data.get("schema_version") if isinstance(data, dict) else None
        if isinstance(version, int) and version > SCHEMA_VERSION:
            found.append(f"{path} (version {version})")
    return sorted(found)


def next_attempt_dir(run_path: Path) -> tuple[int, Path]:
    """The number and folder of the next earlier-attempt slot under a run folder."""
    attempts = run_path / ATTEMPTS_DIR
    taken = [int(p.name) for p in attempts.glob("*") if p.name.isdigit()]
    number = max(taken, default=0) + 1
    return number, attempts / str(number)


def rewrite_derived_file(path: Path, text: str) -> str | None:
    """Write an aggregate or report whose content we derive, whatever is in its place.

    Returns a warning naming the file when the old one was damaged (not UTF-8, not JSON for
    a .json file, a directory or other non-file): it is rebuilt, and a non-file is moved
    aside (`<name>.damaged-<time>`) rather than deleted. Unchanged files are not touched.
    """
    warning = None
    if path.exists() or path.is_symlink():
        if path.is_file() and not path.is_symlink():
            raw = path.read_bytes()
            if raw == text.encode("utf-8"):
                return None
            problem = _damage(raw, json_expected=path.suffix == ".json")
            if problem:
                warning = f"{path}: damaged ({problem}); rebuilt"
        else:
            stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
            aside = path.with_name(f"{path.name}.damaged-{stamp}")
            counter = 1
            while aside.exists():
                aside = path.with_name(f"{path.name}.damaged-{stamp}-{counter}")
                counter += 1
            path.rename(aside)
            warning = f"{path}: damaged (not a regular file); moved to {aside.name} and rebuilt"
    atomic_write_text(path, text)
    return warning


def _damage(raw: bytes, *, json_expected: bool) -> str | None:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return "not UTF-8"
    if json_expected:
        try:
            json.loads(text)
        except ValueError:
            return "invalid JSON"
    return None
