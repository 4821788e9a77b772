"""Whether an experiment's aggregates and reports are current, without reading a record.

Aggregates and reports are a pure function of the run records (and of the plugin version and
the experiment's name): a plain resume that changed no record would spend seconds per 10,000
runs to write the same bytes again. After writing them, the controller stores beside
`result.json` what it built them from: a digest of every record file's name, size,
modification time (ns) and inode, taken before the records were read, and the same stamps of
the files it wrote. A later session whose record files and written files all stamp the same
reuses `result.json` as it is; any record written, replaced, added or removed, and any
aggregate or report touched, makes it aggregate again. `--scylla-regenerate` always does.
"""

from __future__ import annotations

import functools
import hashlib
import os
from collections.abc import Callable
from pathlib import Path

from pydantic import BaseModel, ValidationError

import pytest_scylla
from pytest_scylla.records import RUN_RECORD_FILE, atomic_write_json

AGGREGATE_INPUTS_FILE = ".aggregate-inputs.json"
AGGREGATE_FILE = "result.json"  # results_layout.AGGREGATE_FILE (not imported: no cycle)


class AggregateInputs(BaseModel):
    """`.aggregate-inputs.json`: what an experiment's aggregates and reports were built from."""

    plugin_version: str  # builder_version(): the version and the sources' digest
    experiment_name: str
    records: str  # sha256 over each record file's relative path, size, mtime_ns and inode
    record_count: int
    # Each file the aggregation wrote (relative path) -> [size, mtime_ns, inode] after writing.
    written: dict[str, list[int]]
    # What the manifest takes from the records.
    cli_versions: list[str]
    fixture_sha256: list[str]


@functools.cache  # the sources do not change while a session runs
def builder_version() -> str:
    """The plugin version and a digest of the package's own sources: a development checkout
    whose aggregation or reports changed (same version number) must not reuse old ones."""
    package = Path(__file__).resolve().parent
    digest = hashlib.sha256()
    for source in sorted(package.rglob("*.py")):
        digest.update(str(source.relative_to(package)).encode())
        digest.update(source.read_bytes())
    return f"{pytest_scylla.__version__}+{digest.hexdigest()[:16]}"


def records_fingerprint(experiment_dir: Path) -> tuple[str, int]:
    """(digest, count) of the stamps of every run record under the experiment's folder
    (`T*/<sub-test>/run-*/run_result.json`, the files load_experiment_records reads)."""
    lines: list[str] = []
    for tier in _entries(experiment_dir, lambda name: name.startswith("T")):
        for subtest in _entries(tier.path, lambda name: True):
            for run in _entries(subtest.path, lambda name: name.startswith("run-")):
                # Through symlinks, as the loader reads them.
                stamp = _stamp(os.path.join(run.path, RUN_RECORD_FILE), follow_symlinks=True)
                if stamp is not None:
                    relative = f"{tier.name}/{subtest.name}/{run.name}"
                    lines.append(f"{relative}\0{stamp[0]}\0{stamp[1]}\0{stamp[2]}\n")
    lines.sort()
    return hashlib.sha256("".join(lines).encode("utf-8", "surrogateescape")).hexdigest(), len(lines)


def written_stamps(experiment_dir: Path, names: list[str]) -> dict[str, list[int]]:
    """Stamps of the files an aggregation wrote: `result.json` at every level and `names`."""
    files = [AGGREGATE_FILE, *names]
    for tier in _entries(experiment_dir, lambda name: name.startswith("T")):
        files.append(f"{tier.name}/{AGGREGATE_FILE}")
        for subtest in _entries(tier.path, lambda name: True):
            files.append(f"{tier.name}/{subtest.name}/{AGGREGATE_FILE}")
    stamps: dict[str, list[int]] = {}
    for name in files:
        stamp = _stamp(str(experiment_dir / name))
        if stamp is not None:
            stamps[name] = stamp
    return stamps


def save_inputs(experiment_dir: Path, inputs: AggregateInputs) -> None:
    atomic_write_json(experiment_dir / AGGREGATE_INPUTS_FILE, inputs)


def current_inputs(
    experiment_dir: Path, fingerprint: tuple[str, int], plugin_version: str, experiment_name: str
) -> AggregateInputs | None:
    """The stored inputs when the aggregates on disk were built from exactly these records
    by this version and every file written then is untouched; None otherwise."""
    try:
        inputs = AggregateInputs.model_validate_json(
            (experiment_dir / AGGREGATE_INPUTS_FILE).read_bytes()
        )
    except (OSError, ValidationError):
        return None
    if (
        inputs.plugin_version != plugin_version
        or inputs.experiment_name != experiment_name
        or (inputs.records, inputs.record_count) != fingerprint
        or AGGREGATE_FILE not in inputs.written
    ):
        return None
    for name, stamp in inputs.written.items():
        if _stamp(str(experiment_dir / name)) != stamp:
            return None
    return inputs


def records_sound_as_aggregated(experiment_dir: Path, experiment_name: str) -> bool:
    """Whether the aggregation on disk read every record file of the experiment in full and
    found none damaged (it stores its inputs only then), and no record file changed since:
    each record then still reads as that aggregation read it."""
    fingerprint = records_fingerprint(experiment_dir)
    return (
        current_inputs(experiment_dir, fingerprint, builder_version(), experiment_name) is not None
    )


def forget_inputs(experiment_dir: Path) -> None:
    """Before aggregates are rewritten: a crash halfway must not leave a stale claim."""
    (experiment_dir / AGGREGATE_INPUTS_FILE).unlink(missing_ok=True)


def _stamp(path: str, follow_symlinks: bool = False) -> list[int] | None:
    try:
        stat = os.stat(path, follow_symlinks=follow_symlinks)
    except OSError:
        return None
    return [stat.st_size, stat.st_mtime_ns, stat.st_ino]


def _entries(folder: Path | str, wanted: Callable[[str], bool]) -> list[os.DirEntry[str]]:
    """The sub-folders of `folder` whose names are wanted, by name (symlinks followed, as
    the glob of record_paths follows them)."""
    try:
        with os.scandir(folder) as entries:
            return sorted(
                (entry for entry in entries if wanted(entry.name) and entry.is_dir()),
                key=lambda entry: entry.name,
            )
    except OSError:
        return []
