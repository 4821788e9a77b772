"""A run's files travel home with its report: packed on the worker, unpacked on the controller.

A worker on another host (`--tx ssh=...`, `--tx socket=...`, `popen//chdir=...` with a
relative `--results-dir`) writes its runs to its own disk. Its setup report already carries
the run record; this module adds every other file of the run folder (agent stream and logs,
judge prompts and answers, diff, checks, config manifest, error.log, attempts/) as one
base64 tar.gz, so the controller's results folder is complete and a rejudge or a
regenerate needs no worker's disk.

The files are written redacted by the run: they are packed as they are, and the report's
redaction leaves the payload alone (a secret could not be seen inside compressed bytes,
and rewriting them would break the archive). A run's payload is capped; what does not fit
is left out, largest first, and named in a note file beside the run's other files.
"""

from __future__ import annotations

import base64
import io
import os
import tarfile
import tempfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from pydantic import BaseModel

from pytest_scylla.records import RUN_RECORD_FILE

# The report attribute that carries the payload (set after the report is redacted).
ARTIFACTS_ATTRIBUTE = "scylla_artifacts"
MAX_PACKED_BYTES = 20 * 1024 * 1024  # compressed, per run
# What a payload may unpack to: a hostile agent's output may compress a thousandfold.
MAX_UNPACKED_BYTES = 1024 * 1024 * 1024
LEFT_OUT_NOTE = "artifacts-left-out.txt"
# The record travels as its own attribute and is written last, as the run's "complete" mark.
NOT_PACKED = frozenset({RUN_RECORD_FILE})


class LeftOut(BaseModel):
    path: str
    size: int
    reason: str


@dataclass
class Packed:
    payload: str  # base64 of a tar.gz
    files: int
    left_out: list[LeftOut] = field(default_factory=list)


def run_files(run_folder: Path) -> list[tuple[str, Path, int]]:
    """(posix path inside the run folder, path, size) of every regular file, symlinks
    never followed (a kept workspace is the agent's: a link could point anywhere)."""
    found: list[tuple[str, Path, int]] = []
    for directory, subdirs, names in os.walk(run_folder, followlinks=False):
        subdirs.sort()
        for name in sorted(names):
            path = Path(directory) / name
            relative = path.relative_to(run_folder).as_posix()
            if relative in NOT_PACKED:
                continue
            status = path.lstat()
            if path.is_symlink() or not path.is_file():
                continue
            found.append((relative, path, status.st_size))
    return found


def pack_run(run_folder: Path, max_bytes: int = MAX_PACKED_BYTES) -> Packed | None:
    """The run folder as a payload, or None when it does not exist."""
    if not run_folder.is_dir():
        return None
    files = run_files(run_folder)
    left_out: list[LeftOut] = []
    data = _tar_gz(files, left_out)
    if len(data) > max_bytes:
        files, left_out = _fit(files, max_bytes)
        data = _tar_gz(files, left_out)
        while len(data) > max_bytes and files:
            # The estimate was short (tar headers, the note): drop the largest and retry.
            name, _path, size = max(files, key=lambda entry: entry[2])
            files = [entry for entry in files if entry[0] != name]
            left_out.append(LeftOut(path=name, size=size, reason="over the per-run cap"))
            data = _tar_gz(files, left_out)
    return Packed(base64.b64encode(data).decode("ascii"), len(files), left_out)


def _fit(
    files: list[tuple[str, Path, int]], max_bytes: int
) -> tuple[list[tuple[str, Path, int]], list[LeftOut]]:
    """Keep the files that fit, smallest compressed first: many small logs are worth more
    than one huge stream (which is named in the note)."""
    budget = int(max_bytes * 0.95)
    sized = sorted((_compressed_size(entry[1]), entry) for entry in files)
    kept, left_out, used = [], [], 0
    for compressed, entry in sized:
        if used + compressed <= budget:
            kept.append(entry)
            used += compressed
        else:
            left_out.append(
                LeftOut(
                    path=entry[0],
                    size=entry[2],
                    reason=f"over the per-run cap of {max_bytes} bytes compressed",
                )
            )
    kept.sort(key=lambda entry: entry[0])
    return kept, left_out


def _compressed_size(path: Path) -> int:
    compressor = zlib.compressobj(6)
    size = 0
    with path.open("rb") as stream:
        while chunk := stream.read(1024 * 1024):
            size += len(compressor.compress(chunk))
    return size + len(compressor.flush())


def _tar_gz(files: list[tuple[str, Path, int]], left_out: list[LeftOut]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz", compresslevel=6) as archive:
        for name, path, _size in files:
            try:
                stream = path.open("rb")
            except OSError as error:
                left_out.append(LeftOut(path=name, size=0, reason=f"unreadable: {error}"))
                continue
            with stream:
                info = tarfile.TarInfo(name)
                info.size = os.fstat(stream.fileno()).st_size
                info.mode = 0o644
                archive.addfile(info, stream)
        if left_out:
            note = left_out_note(left_out).encode()
            info = tarfile.TarInfo(LEFT_OUT_NOTE)
            info.size = len(note)
            info.mode = 0o644
            archive.addfile(info, io.BytesIO(note))
    return buffer.getvalue()


def left_out_note(left_out: list[LeftOut]) -> str:
    lines = ["Files of this run that stayed on the worker's disk (not sent to the controller):"]
    lines += [f"{entry.path}\t{entry.size} bytes\t{entry.reason}" for entry in left_out]
    return "\n".join(lines) + "\n"


@dataclass
class Unpacked:
    written: int = 0
    unchanged: int = 0
    problems: list[str] = field(default_factory=list)


def unpack_run(payload: str, run_folder: Path) -> Unpacked:
    """Write the payload's files under `run_folder`, each atomically; a file already there
    with the same bytes is not touched. Names that would leave the folder, links and
    anything but a regular file are refused (the payload came over the wire)."""
    result = Unpacked()
    try:
        data = base64.b64decode(payload, validate=True)
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
            _unpack_members(archive, run_folder, result)
    except (ValueError, tarfile.TarError, EOFError, zlib.error) as error:
        result.problems.append(f"{run_folder}: unreadable file payload ({error})")
    return result


def _unpack_members(archive: tarfile.TarFile, run_folder: Path, result: Unpacked) -> None:
    total = 0
    for member in archive:
        relative = _safe_name(member.name)
        if relative is None or not member.isfile():
            result.problems.append(f"{run_folder}: refused payload entry {member.name!r}")
            continue
        total += member.size
        if total > MAX_UNPACKED_BYTES:
            result.problems.append(
                f"{run_folder}: payload larger than {MAX_UNPACKED_BYTES} bytes unpacked; "
                f"{relative} and what follows not written"
            )
            break
        stream = archive.extractfile(member)
        if stream is None:
            continue
        content = stream.read()
        target = run_folder.joinpath(*relative.parts)
        if not _inside(target, run_folder):
            result.problems.append(f"{run_folder}: refused {relative} (leaves the folder)")
            continue
        if _same_bytes(target, content):
            result.unchanged += 1
            continue
        _atomic_write_bytes(target, content)
        result.written += 1


def _safe_name(name: str) -> PurePosixPath | None:
    path = PurePosixPath(name)
    if path.is_absolute() or not path.parts or any(part in ("", ".", "..") for part in path.parts):
        return None
    if "\\" in name or "\x00" in name:
        return None
    return path


def _inside(target: Path, run_folder: Path) -> bool:
    """A folder on the way that is a link (left by anyone) must not carry a write outside."""
    return target.parent.resolve().is_relative_to(run_folder.resolve()) and not target.is_symlink()


def _same_bytes(target: Path, content: bytes) -> bool:
    try:
        if target.is_symlink() or not target.is_file() or target.stat().st_size != len(content):
            return False
        return target.read_bytes() == content
    except OSError:
        return False


def _atomic_write_bytes(target: Path, content: bytes) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    try:
        with os.fdopen(descriptor, "wb") as stream:
            stream.write(content)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def controller_experiment_file(reported: Path, arguments: list[str]) -> Path:
    """The controller's own copy of an experiment a worker ran. A worker on another host
    reports its own path (under its --tx chdir); the controller sent it that experiment
    from one of its own arguments, so the copy there is the one to snapshot from."""
    if reported.is_file():
        return reported
    folder = reported.parent.name
    for argument in arguments:
        given = Path(argument.split("::", 1)[0])
        for candidate in (given, given / reported.name, given / folder / reported.name):
            if (
                candidate.name == reported.name
                and candidate.parent.name == folder
                and candidate.is_file()
            ):
                return candidate
    return reported
