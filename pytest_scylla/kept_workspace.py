"""`--scylla-keep-workspace`: a copy of what the agent left, fit to sit among the results.

Everything in the workspace is the agent's, so the copy follows no symlink (links are kept
as links, their targets redacted: a `notes.txt -> /etc/shadow` stays a link and never
becomes a copy of the host's file), leaves out FIFOs, sockets and devices, and `.git`
folders (compressed objects cannot be redacted), redacts every file with the run's
`Redactor` as it streams, and stops at size caps. What was left out is listed in
`kept_workspace.json` beside the copy.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, Field

from pytest_scylla.records import atomic_write_json
from pytest_scylla.redact import Redactor, StreamRedactor

KEPT_MANIFEST_FILE = "kept_workspace.json"
_CHUNK = 1 << 16


@dataclass(frozen=True)
class KeepLimits:
    max_file_bytes: int = 10 << 20
    max_total_bytes: int = 200 << 20


class LeftOut(BaseModel):
    path: str
    reason: str


class KeptWorkspace(BaseModel):
    """`kept_workspace.json`: what the kept copy holds and what it left out."""

    files: int = 0
    links: int = 0
    bytes: int = 0
    left_out: list[LeftOut] = Field(default_factory=list)


def _copy_file(source: str, target: str, redactor: Redactor, limit: int) -> int | None:
    """Copy one regular file through the redactor; None when it is not one (any more)."""
    try:
        descriptor = os.open(source, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    with os.fdopen(descriptor, "rb") as reader:
        info = os.fstat(reader.fileno())
        if not stat.S_ISREG(info.st_mode):
            return None
        mode = 0o755 if info.st_mode & stat.S_IXUSR else 0o644
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        with os.fdopen(os.open(target, flags, mode), "wb") as writer:
            stream = StreamRedactor(redactor, writer)
            copied = 0
            while copied <= limit and (chunk := reader.read(_CHUNK)):
                stream.write(chunk)
                copied += len(chunk)
            stream.close()
    return copied


def keep_workspace(
    workspace: Path, destination: Path, redactor: Redactor, limits: KeepLimits | None = None
) -> KeptWorkspace:
    """Copy `workspace` to `destination` (which must not exist) as the module says."""
    limits = limits or KeepLimits()
    kept = KeptWorkspace()
    destination.mkdir(parents=True)
    # (folder in the workspace, the same folder in the copy, its name redacted), "" or "a/"
    pending = [("", "")]
    while pending:
        folder, kept_folder = pending.pop()
        try:
            with os.scandir(workspace / folder if folder else workspace) as listing:
                entries = sorted(listing, key=lambda entry: entry.name)
        except OSError as error:
            shown = kept_folder or "."
            kept.left_out.append(LeftOut(path=shown, reason=f"not readable: {error.strerror}"))
            continue
        for entry in entries:
            # A name can hold a secret too (`touch "$API_KEY"`): the copy uses it redacted.
            shown = kept_folder + redactor(entry.name)
            try:
                info = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            target = destination / shown
            if os.path.lexists(target):
                kept.left_out.append(LeftOut(path=shown, reason="its redacted name is taken"))
            elif entry.name == ".git":
                kept.left_out.append(LeftOut(path=shown, reason="git data (cannot be redacted)"))
            elif stat.S_ISLNK(info.st_mode):
                os.symlink(redactor(os.readlink(entry.path)), target)
                kept.links += 1
            elif stat.S_ISDIR(info.st_mode):
                target.mkdir()
                pending.append((folder + entry.name + "/", shown + "/"))
            elif not stat.S_ISREG(info.st_mode):
                kept.left_out.append(
                    LeftOut(path=shown, reason="not a file (FIFO, socket, device)")
                )
            elif info.st_size > limits.max_file_bytes:
                kept.left_out.append(
                    LeftOut(
                        path=shown,
                        reason=f"{info.st_size} bytes, over the {limits.max_file_bytes}-byte limit per file",
                    )
                )
            elif kept.bytes + info.st_size > limits.max_total_bytes:
                kept.left_out.append(
                    LeftOut(
                        path=shown,
                        reason=f"{info.st_size} bytes, over the {limits.max_total_bytes}-byte limit in all",
                    )
                )
            else:
                copied = _copy_file(entry.path, str(target), redactor, limits.max_file_bytes)
                if copied is None:
                    kept.left_out.append(LeftOut(path=shown, reason="not a regular file"))
                else:
                    kept.files += 1
                    kept.bytes += copied
    atomic_write_json(destination.parent / KEPT_MANIFEST_FILE, kept)
    return kept
