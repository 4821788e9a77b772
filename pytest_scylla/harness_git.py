"""The harness's own git repository of a run, and what the agent changed, without trusting it.

Everything in the workspace is the agent's after it ran: `.git/config` (fsmonitor, filter,
textconv and hook commands), `.gitattributes`, a `.git` file pointing at another repository,
symlinks, FIFOs, huge files. So no git command ever runs on the workspace after the agent.
Before the agent starts, `snapshot_repository` makes a private bare repository beside the
workspace (never inside it: the sandboxes expose only `workspace`, `home` and `inputs`)
that borrows the source cache's objects and copies the few the sub-test added. After the
agent, `summarize_changes` walks the workspace in Python (lstat only, no link followed, no
`.git` entered, git's ignore rules applied by `gitignore.py`), reads changed files with
size caps, hands their bytes to `git fast-import` in the private repository, and diffs two
commits there: git only ever sees bytes the harness gave it, with its config neutralised.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import stat
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from pydantic import BaseModel, Field

from pytest_scylla.gitignore import IgnorePattern, is_ignored, parse_ignore_file

# Config nobody else can set: no system or global file, no fsmonitor, hooks, attributes or
# excludes files; diff drivers are never run (--no-ext-diff --no-textconv on every diff).
SAFE_CONFIG = (
    "-c",
    "core.fsmonitor=false",
    "-c",
    "core.hooksPath=/dev/null",
    "-c",
    "core.attributesFile=/dev/null",
    "-c",
    "core.excludesFile=/dev/null",
    "-c",
    "core.untrackedCache=false",
    "-c",
    "core.quotePath=true",
    "-c",
    "commit.gpgsign=false",
    # Harness repositories are scratch (runs) or checked by digest (the cache): fsync buys
    # nothing and costs milliseconds per run.
    "-c",
    "core.fsync=none",
)
SAFE_ENV = {
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": "/dev/null",
    "GIT_ATTR_NOSYSTEM": "1",
    "GIT_NO_REPLACE_OBJECTS": "1",
    "GIT_TERMINAL_PROMPT": "0",
    "HOME": "/nonexistent",
    "LC_ALL": "C",
    "PATH": "/usr/local/bin:/usr/bin:/bin",
    "GIT_AUTHOR_NAME": "scylla",
    "GIT_AUTHOR_EMAIL": "scylla@scylla.invalid",
    "GIT_COMMITTER_NAME": "scylla",
    "GIT_COMMITTER_EMAIL": "scylla@scylla.invalid",
}
_CONFIG_FILE = """[core]
\trepositoryformatversion = 0
\tbare = true
\tfsmonitor = false
\thooksPath = /dev/null
\tattributesFile = /dev/null
\texcludesFile = /dev/null
\tuntrackedCache = false
"""
AFTER_REF = "refs/scylla/after"
IGNORE_FILE_MAX_BYTES = 256 * 1024  # a bigger .gitignore is read up to here
_CHUNK = 1 << 20


class WorkspaceError(RuntimeError):
    """The workspace could not be prepared or read: an infrastructure error, not the agent's."""


@dataclass(frozen=True)
class DiffLimits:
    """How much of the agent's files the summary reads and the diff holds."""

    max_file_bytes: int = 1 << 20  # a changed file bigger than this is listed, not shown
    max_total_bytes: int = 8 << 20  # changed files shown in all
    max_diff_bytes: int = 16 << 20  # the diff text kept
    max_new_entries: int = 100_000  # untracked files and folders walked


@dataclass(frozen=True)
class _Tracked:
    mode: str  # "100644", "100755", "120000", "160000"
    oid: str


_StatKey = tuple[int, int, int, int, int]  # inode, size, mtime_ns, ctime_ns, mode


@dataclass
class HarnessRepository:
    """The private repository of one run and the starting state the agent was given."""

    git_dir: Path
    base_commit: str
    tracked: dict[str, _Tracked]
    # lstat of each tracked file before the agent: unchanged inode, size, times and mode mean
    # unchanged content (the agent cannot set ctime), so the file is not read again.
    stat_before: dict[str, _StatKey] = field(default_factory=dict)
    # The id of the bytes the checkout wrote, where they are not the blob's.
    checked_out_oid: dict[str, str] = field(default_factory=dict)

    def git(self, args: list[str], *, stdout: BinaryIO | None = None) -> str:
        return run_git(self.git_dir, args, stdout=stdout)


def run_git(
    git_dir: Path, args: list[str], *, stdout: BinaryIO | None = None, stdin: bytes | None = None
) -> str:
    """git on a harness-owned repository only: explicit GIT_DIR, no work tree, safe config."""
    completed = subprocess.run(
        ["git", *SAFE_CONFIG, *args],
        env={**SAFE_ENV, "GIT_DIR": str(git_dir)},
        cwd=git_dir,
        input=stdin,
        stdout=stdout if stdout is not None else subprocess.PIPE,
        stderr=subprocess.PIPE,
        check=False,
    )
    if completed.returncode != 0:
        detail = completed.stderr.decode(errors="replace").strip()[-500:]
        raise WorkspaceError(f"git {' '.join(args[:3])} failed in {git_dir}: {detail}")
    return "" if stdout is not None else completed.stdout.decode(errors="surrogateescape")


def _stat_key(st: os.stat_result) -> _StatKey:
    return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_mode)


def _read_head(git_dir: Path) -> str:
    """The commit HEAD names (a file read saves a git process on every run)."""
    head = (git_dir / "HEAD").read_text().strip()
    if head.startswith("ref: "):
        ref_file = git_dir / head.removeprefix("ref: ")
        if ref_file.is_file():
            head = ref_file.read_text().strip()
    if len(head) != 40 or any(char not in "0123456789abcdef" for char in head):
        head = run_git(git_dir, ["rev-parse", "--verify", "HEAD^{commit}"]).strip()
    return head


# (cache objects, commit) -> the commit's files: every run of a sub-test starts from the
# same commit, and a commit id names its tree, so one `git ls-tree` per process is enough.
_LISTINGS: dict[tuple[Path, str], tuple[dict[str, _Tracked], dict[str, int]]] = {}
_LISTINGS_KEPT = 256


def _tree_listing(
    git_dir: Path, cache_objects: Path, head: str
) -> tuple[dict[str, _Tracked], dict[str, int]]:
    """(mode and blob id, blob size) of each path of the commit; do not modify them."""
    key = (cache_objects, head)
    if key not in _LISTINGS:
        tracked: dict[str, _Tracked] = {}
        blob_sizes: dict[str, int] = {}
        listing = run_git(git_dir, ["ls-tree", "-r", "-z", "--long", "--full-tree", head])
        for line in listing.split("\0"):
            if line:
                meta, path = line.split("\t", 1)
                mode, _kind, oid, size = meta.split()
                tracked[path] = _Tracked(mode, oid)
                blob_sizes[path] = int(size) if size.isdigit() else -1
        if len(_LISTINGS) >= _LISTINGS_KEPT:
            _LISTINGS.clear()
        _LISTINGS[key] = (tracked, blob_sizes)
    return _LISTINGS[key]


def snapshot_repository(
    workspace: Path, git_dir: Path, cache_repository: Path
) -> HarnessRepository:
    """The private repository, made after the sub-test is committed and before the agent runs.

    The workspace is still the harness's own here. The private repository borrows the cache's
    objects (read-only, through alternates) and copies the workspace's loose objects: the
    cache is packed, so those are just the sub-test commit's.
    """
    head = _read_head(workspace / ".git")
    (git_dir / "objects" / "info").mkdir(parents=True)
    (git_dir / "refs").mkdir()
    (git_dir / "HEAD").write_text("ref: refs/heads/scylla\n")
    (git_dir / "config").write_text(_CONFIG_FILE)
    cache_objects = (cache_repository / ".git" / "objects").resolve()
    (git_dir / "objects" / "info" / "alternates").write_text(f"{cache_objects}\n")
    source_objects = workspace / ".git" / "objects"
    for folder in os.scandir(source_objects):
        if len(folder.name) == 2 and folder.is_dir(follow_symlinks=False):
            target = git_dir / "objects" / folder.name
            target.mkdir()
            for loose in os.scandir(folder.path):
                shutil.copyfile(loose.path, target / loose.name, follow_symlinks=False)
    tracked, blob_sizes = _tree_listing(git_dir, cache_objects, head)
    repository = HarnessRepository(git_dir=git_dir, base_commit=head, tracked=dict(tracked))
    for path, entry in tracked.items():
        if entry.mode == "160000":
            continue
        with contextlib.suppress(OSError):  # a file the checkout did not write
            before = os.lstat(workspace / path)
            repository.stat_before[path] = _stat_key(before)
            if stat.S_ISREG(before.st_mode) and before.st_size != blob_sizes[path]:
                # The checkout converted it (a .gitattributes eol rule of the source): its
                # bytes are not the blob's, and must not count as a change.
                repository.checked_out_oid[path] = _file_oid(str(workspace / path)) or ""
    return repository


class CutFile(BaseModel):
    path: str
    size: int
    reason: str


class DiffSummary(BaseModel):
    files: list[str]
    files_changed: int
    insertions: int
    deletions: int
    diff: str
    cut: list[CutFile] = Field(default_factory=list)  # changed files not shown in the diff
    notes: list[str] = Field(default_factory=list)  # what else the summary left out, and why


def quote_path(path: str) -> str:
    """A path as git prints it with core.quotePath (C-style quotes when it needs them)."""
    raw = os.fsencode(path)
    escapes = {7: "\\a", 8: "\\b", 9: "\\t", 10: "\\n", 11: "\\v", 12: "\\f", 13: "\\r"}
    escapes |= {ord('"'): '\\"', ord("\\"): "\\\\"}
    if not any(byte < 0x20 or byte >= 0x7F or byte in (0x22, 0x5C) for byte in raw):
        return path
    body = "".join(
        escapes.get(byte, f"\\{byte:03o}" if byte < 0x20 or byte >= 0x7F else chr(byte))
        for byte in raw
    )
    return f'"{body}"'


def _blob_oid(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest()


def _open_regular(path: str) -> int | None:
    """A descriptor on a regular file, never through a symlink, never blocking on a FIFO."""
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    if not stat.S_ISREG(os.fstat(descriptor).st_mode):
        os.close(descriptor)
        return None
    return descriptor


def read_capped(path: str, limit: int) -> bytes | None:
    """Up to limit + 1 bytes of a regular file (None: not a regular file, or unreadable)."""
    descriptor = _open_regular(path)
    if descriptor is None:
        return None
    with os.fdopen(descriptor, "rb") as handle:
        return handle.read(limit + 1)


def _file_oid(path: str) -> str | None:
    """The blob id of a file of any size, read in chunks."""
    descriptor = _open_regular(path)
    if descriptor is None:
        return None
    with os.fdopen(descriptor, "rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        digest = hashlib.sha1(b"blob %d\0" % size, usedforsecurity=False)
        read = 0
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
            read += len(chunk)
        return digest.hexdigest() if read == size else None


@dataclass
class _Found:
    """One workspace entry git could hold: a regular file or a symlink."""

    stat: os.stat_result

    @property
    def is_link(self) -> bool:
        return stat.S_ISLNK(self.stat.st_mode)

    @property
    def mode(self) -> str:
        if self.is_link:
            return "120000"
        return "100755" if self.stat.st_mode & stat.S_IXUSR else "100644"


def _walk(
    workspace: Path, repository: HarnessRepository, limits: DiffLimits, notes: list[str]
) -> dict[str, _Found]:
    """Files and links git would see (ignored untracked ones left out), by relative path."""
    tracked = repository.tracked
    tracked_dirs = {path.rsplit("/", 1)[0] + "/" for path in tracked if "/" in path}
    for folder in list(tracked_dirs):
        parts = folder.rstrip("/").split("/")
        tracked_dirs.update("/".join(parts[:n]) + "/" for n in range(1, len(parts)))
    found: dict[str, _Found] = {}
    specials: list[str] = []
    new_entries = 0
    # (folder relative to the workspace, "" or "a/b/"; patterns in force; inside an ignored folder)
    pending: list[tuple[str, tuple[IgnorePattern, ...], bool]] = [("", (), False)]
    while pending:
        folder, patterns, in_ignored = pending.pop()
        try:
            with os.scandir(workspace / folder if folder else workspace) as listing:
                entries = sorted(listing, key=lambda entry: entry.name)
        except OSError as error:
            notes.append(f"{quote_path(folder)}: not read ({error.strerror})")
            continue
        ignore_file = next((entry for entry in entries if entry.name == ".gitignore"), None)
        if ignore_file is not None and not in_ignored:
            text = read_capped(ignore_file.path, IGNORE_FILE_MAX_BYTES)
            if text is not None:
                rules = text[:IGNORE_FILE_MAX_BYTES].decode("utf-8", errors="surrogateescape")
                patterns = (*patterns, *parse_ignore_file(rules, folder))
        for entry in entries:
            if entry.name == ".git":
                continue  # git never tracks it, and the harness never follows it
            relative = folder + entry.name
            try:
                entry_stat = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            is_tracked = relative in tracked
            if stat.S_ISDIR(entry_stat.st_mode):
                holds_tracked = relative + "/" in tracked_dirs
                ignored = in_ignored or is_ignored(patterns, relative, is_dir=True)
                if ignored and not holds_tracked:
                    continue
                if not holds_tracked:
                    new_entries += 1
                    if new_entries > limits.max_new_entries:
                        continue
                pending.append((relative + "/", patterns, ignored))
                continue
            if not is_tracked and (in_ignored or is_ignored(patterns, relative, is_dir=False)):
                continue
            if not is_tracked:
                new_entries += 1
                if new_entries > limits.max_new_entries:
                    continue
            if stat.S_ISREG(entry_stat.st_mode) or stat.S_ISLNK(entry_stat.st_mode):
                found[relative] = _Found(entry_stat)
            else:
                specials.append(quote_path(relative))
    if new_entries > limits.max_new_entries:
        notes.append(
            f"the workspace holds more than {limits.max_new_entries} new files and folders; "
            "the rest are not listed"
        )
    if specials:
        notes.append(f"not files, left out: {', '.join(sorted(specials)[:20])}")
    return found


def _fast_import_path(path: str) -> bytes:
    raw = os.fsencode(path)
    if b"\n" in raw or raw.startswith(b'"'):
        escaped = raw.replace(b"\\", b"\\\\").replace(b'"', b'\\"').replace(b"\n", b"\\n")
        return b'"' + escaped + b'"'
    return raw


@dataclass
class _Changes:
    deleted: list[str] = field(default_factory=list)
    # (path, mode, content) with content bytes, or an existing blob id as str
    written: list[tuple[str, str, bytes | str]] = field(default_factory=list)
    cut: list[CutFile] = field(default_factory=list)
    stored_bytes: int = 0


def _placeholder(size: int, reason: str) -> bytes:
    return f"[scylla: content not shown: {size} bytes, {reason}]\n".encode()


def _content(
    workspace: Path, path: str, found: _Found, limits: DiffLimits, changes: _Changes
) -> bytes | None:
    """The bytes to store for a changed file (a placeholder when over a cap); None: gone."""
    full = os.path.join(workspace, path)
    if found.is_link:
        try:
            return os.fsencode(os.readlink(full))
        except OSError:
            return None
    size = found.stat.st_size
    if size > limits.max_file_bytes:
        reason = f"over the {limits.max_file_bytes}-byte limit per file"
    elif changes.stored_bytes + size > limits.max_total_bytes:
        reason = f"over the {limits.max_total_bytes}-byte limit for all files shown"
    else:
        data = read_capped(full, limits.max_file_bytes)
        if data is None:
            return None
        if len(data) <= limits.max_file_bytes:
            changes.stored_bytes += len(data)
            return data
        reason = f"over the {limits.max_file_bytes}-byte limit per file"
    changes.cut.append(CutFile(path=quote_path(path), size=size, reason=reason))
    return _placeholder(size, reason)


def _compare(
    workspace: Path,
    repository: HarnessRepository,
    found: dict[str, _Found],
    limits: DiffLimits,
) -> _Changes:
    changes = _Changes()
    for path, base in repository.tracked.items():
        if base.mode == "160000":
            continue  # a submodule: the starting state never checks one out
        entry = found.get(path)
        if entry is None:
            changes.deleted.append(path)
            continue
        if entry.mode == base.mode and repository.stat_before.get(path) == _stat_key(entry.stat):
            continue
        full = os.path.join(workspace, path)
        if entry.is_link:
            content = _content(workspace, path, entry, limits, changes)
            if content is None:
                changes.deleted.append(path)
            elif _blob_oid(content) != base.oid or entry.mode != base.mode:
                changes.written.append((path, entry.mode, content))
            continue
        before = repository.stat_before.get(path)
        if before is not None and before[1] != entry.stat.st_size:
            changed = True  # a new size is a new content: no need to read it twice
        else:
            oid = _file_oid(full)
            if oid is None:
                changes.deleted.append(path)
                continue
            changed = oid not in (base.oid, repository.checked_out_oid.get(path))
        if not changed:
            if entry.mode != base.mode:
                changes.written.append((path, entry.mode, base.oid))
            continue
        content = _content(workspace, path, entry, limits, changes)
        if content is None:
            changes.deleted.append(path)
        else:
            changes.written.append((path, entry.mode, content))
    for path, entry in found.items():
        if path in repository.tracked:
            continue
        content = _content(workspace, path, entry, limits, changes)
        if content is not None:
            changes.written.append((path, entry.mode, content))
    return changes


def _import_after(repository: HarnessRepository, changes: _Changes) -> None:
    """One commit on top of the starting state, from bytes the harness read itself."""
    stream: list[bytes] = [
        f"commit {AFTER_REF}\n".encode(),
        b"committer scylla <scylla@scylla.invalid> 0 +0000\n",
        b"data 5\nafter\n",
        f"from {repository.base_commit}\n".encode(),
    ]
    for path in changes.deleted:
        stream.append(b"D " + _fast_import_path(path) + b"\n")
    for path, mode, content in changes.written:
        if isinstance(content, str):
            stream.append(f"M {mode} {content} ".encode() + _fast_import_path(path) + b"\n")
        else:
            stream.append(f"M {mode} inline ".encode() + _fast_import_path(path) + b"\n")
            stream.append(b"data %d\n" % len(content) + content + b"\n")
    stream.append(b"done\n")
    run_git(
        repository.git_dir,
        # A handful of loose objects is cheaper than a pack and its index.
        ["-c", "fastimport.unpackLimit=1000", "fast-import", "--quiet", "--done", "--force"],
        stdin=b"".join(stream),
    )


def _read_diff(diff_file: Path, limits: DiffLimits, notes: list[str]) -> tuple[str, int, int, int]:
    """(patch text, files changed, insertions, deletions) from `--numstat --patch` output."""
    insertions = deletions = changed = 0
    with open(diff_file, "rb") as handle:
        # The numstat lines, a blank line, then the patch; paths with newlines come quoted.
        for line in handle:
            if line == b"\n":
                break
            added, removed, _path = line.split(b"\t", 2)
            changed += 1
            insertions += int(added) if added.isdigit() else 0
            deletions += int(removed) if removed.isdigit() else 0
        start = handle.tell()
        size = os.fstat(handle.fileno()).st_size - start
        patch = handle.read(limits.max_diff_bytes)
    if size > limits.max_diff_bytes:
        notes.append(f"the diff is cut after {limits.max_diff_bytes} of its {size} bytes")
    return patch.decode("utf-8", errors="replace"), changed, insertions, deletions


def summarize_changes(
    workspace: Path, repository: HarnessRepository, limits: DiffLimits | None = None
) -> DiffSummary:
    """What the agent changed since the materialized starting commit, untracked files included.

    Files over a cap are in the tree with a one-line note as their content and are listed in
    `cut`; the diff text starts with `# scylla:` lines saying what was cut and why.
    """
    limits = limits or DiffLimits()
    notes: list[str] = []
    found = _walk(workspace, repository, limits, notes)
    files = sorted(quote_path(path) for path in found)
    changes = _compare(workspace, repository, found, limits)
    if not changes.deleted and not changes.written:
        return DiffSummary(
            files=files, files_changed=0, insertions=0, deletions=0, diff="", notes=notes
        )
    _import_after(repository, changes)
    diff_file = repository.git_dir / "after.diff"
    with open(diff_file, "wb") as sink:
        repository.git(
            [
                "diff",
                "--no-color",
                "--no-ext-diff",
                "--no-textconv",
                "--numstat",
                "--patch",
                repository.base_commit,
                AFTER_REF,
            ],
            stdout=sink,
        )
    patch, changed, insertions, deletions = _read_diff(diff_file, limits, notes)
    diff_file.unlink()
    header = [
        f"# scylla: {cut.path} ({cut.size} bytes) not shown: {cut.reason}\n" for cut in changes.cut
    ]
    header += [f"# scylla: {note}\n" for note in notes]
    return DiffSummary(
        files=files,
        files_changed=changed,
        insertions=insertions,
        deletions=deletions,
        diff="".join(header) + patch,
        cut=changes.cut,
        notes=notes,
    )
