"""Per-run workspaces: a cached source repository, a private clone of it, the sub-test on top.

The source is turned into a packed git repository once per experiment and source version
(under a file lock, since xdist workers race for it), with a digest of its git data beside
it; each process checks that digest once before using the cache and rebuilds a cache that
does not match. Each run clones the cache with copied objects (never hard links: the agent,
maybe another uid in a container, owns its clone's files and must not reach the cache's
inodes), materializes its sub-test's resources and commits them, so the diff the judge sees
holds the agent's changes only. After the agent, `harness_git` computes that diff without
running git on anything the agent wrote.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

from filelock import FileLock
from pydantic import BaseModel, Field

from pytest_scylla.harness_git import (
    SAFE_CONFIG,
    SAFE_ENV,
    HarnessRepository,
    WorkspaceError,
    snapshot_repository,
)
from pytest_scylla.spec.catalogue import Catalogue, ResolvedSubTest
from pytest_scylla.spec.load_experiment import Experiment

MATERIALIZE_MESSAGE = "scylla: materialize sub-test"
# Only ever run on repositories the harness made and nobody else has written to yet (the
# cache, a workspace before its agent starts): no safe.directory exception is needed.
GIT = ("git", *SAFE_CONFIG)
GIT_IDENTITY = SAFE_ENV
# A shipped folder's starting commit has a fixed date, so a rebuilt cache has the same commit.
IMPORT_DATE = "2000-01-01T00:00:00+00:00"
DIGEST_SUFFIX = ".sha256"
HARNESS_GIT_DIR = "harness.git"


def git(
    args: list[str], cwd: Path, *, check: bool = True, env: dict[str, str] | None = None
) -> str:
    completed = subprocess.run(
        [*GIT, *args],
        cwd=cwd,
        env={**GIT_IDENTITY, **(env or {})},
        capture_output=True,
        text=True,
        errors="replace",
    )
    if check and completed.returncode != 0:
        raise WorkspaceError(
            f"git {' '.join(args)} failed in {cwd}: {completed.stderr.strip()[-500:]}"
        )
    return completed.stdout


def _tree_hash(directory: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(directory.rglob("*")):
        if ".git" in path.relative_to(directory).parts:
            continue
        relative = path.relative_to(directory).as_posix()
        digest.update(relative.encode())
        if path.is_symlink():
            digest.update(b"link:" + str(path.readlink()).encode())
        elif path.is_file():
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


class StartingPoint(NamedTuple):
    """Where runs start: the cached repository, the commit, and that commit's date."""

    repository: Path
    commit: str
    date: str  # ISO 8601 committer date


def cache_digest(repository: Path) -> str:
    """A digest of everything of a cached repository's git data runs rely on."""
    git_dir = repository / ".git"
    digest = hashlib.sha256()
    for name in ("HEAD", "packed-refs", "refs", "objects"):
        top = git_dir / name
        paths = [top] if top.is_file() else sorted(p for p in top.rglob("*") if not p.is_dir())
        for path in paths:
            digest.update(path.relative_to(git_dir).as_posix().encode() + b"\0")
            if path.is_symlink():
                digest.update(b"link:" + os.fsencode(os.readlink(path)))
                continue
            with open(path, "rb") as handle:
                while chunk := handle.read(1 << 20):
                    digest.update(chunk)
            digest.update(b"\0")
    return digest.hexdigest()


class SourceCache:
    """Starting repositories, each prepared once: `<cache>/<experiment>-<version>`.

    Runs never write to the cache, but someone may have (an older version shared its
    objects with the agents' clones): a cache whose digest (`<name>.sha256`, written when
    it was built) does not match is rebuilt, checked once per process.
    """

    def __init__(self, cache_dir: Path) -> None:
        self.cache_dir = cache_dir
        # Hashing a shipped repository reads all of it: once per process, not once per run.
        self._versions: dict[Path, str] = {}
        self._commits: dict[tuple[Path, str], StartingPoint] = {}  # by (repository, ref)
        self._verified: set[Path] = set()
        # (repository, starting commit, manifest digest) -> (sub-test commit, its objects)
        self._subtest_commits: dict[tuple[Path, str, str], tuple[str, dict[str, bytes]]] = {}

    def repository(self, experiment: Experiment) -> StartingPoint:
        """The cached repository and the commit runs start from."""
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        if experiment.source_dir is not None:
            source_dir = experiment.source_dir
            version = self._versions.get(source_dir) or _tree_hash(source_dir)
            self._versions[source_dir] = version
            target = self.cache_dir / f"{experiment.id}-{version}"
            self._ensure(target, lambda staging: self._import_folder(source_dir, staging))
            return self._resolve(target, "HEAD")
        source = experiment.spec.source
        if source.repo is None:
            raise WorkspaceError(
                f"{experiment.test_file}: source: neither 'path' nor 'repo' is given"
            )
        repo = source.repo
        name = hashlib.sha256(repo.encode()).hexdigest()[:12]
        target = self.cache_dir / f"{experiment.id}-{name}"
        self._ensure(target, lambda staging: self._clone_remote(repo, staging))
        return self._resolve(target, source.hash or source.ref or "HEAD")

    def _ensure(self, target: Path, build: Callable[[Path], None]) -> None:
        """Build the cache when missing or damaged, under the lock xdist workers share."""
        if target in self._verified:
            return
        digest_file = target.with_name(target.name + DIGEST_SUFFIX)
        with FileLock(str(target) + ".lock"):
            intact = (
                (target / ".git").is_dir()
                and digest_file.is_file()
                and digest_file.read_text().strip() == cache_digest(target)
            )
            if not intact:
                staging = target.with_name(target.name + ".partial")
                remove_tree(staging)
                build(staging)
                # One pack: a run's clone copies one file, and the digest reads few.
                git(["repack", "-a", "-d", "-q"], staging)
                digest = cache_digest(staging)
                if target.exists():
                    damaged = target.with_name(f"{target.name}.damaged-{os.getpid()}")
                    target.rename(damaged)
                    remove_tree(damaged)
                staging.rename(target)
                digest_file.write_text(digest + "\n")
                self._commits = {k: v for k, v in self._commits.items() if k[0] != target}
        self._verified.add(target)

    def _resolve(self, repository: Path, ref: str) -> StartingPoint:
        """The commit a ref names; the cache is never updated, so once per process is enough."""
        key = (repository, ref)
        if key not in self._commits:
            shown = git(["show", "-s", "--format=%H%n%cI", f"{ref}^{{commit}}"], repository)
            commit, date = shown.split()
            self._commits[key] = StartingPoint(repository, commit, date)
        return self._commits[key]

    def start_workspace(
        self,
        start: StartingPoint,
        subtest: ResolvedSubTest,
        catalogue: Catalogue,
        destination: Path,
        clone: Callable[[Path, str, Path], None] | None = None,
    ) -> ConfigManifest:
        """`clone_workspace` then `materialize`, with the sub-test's commit made once per
        process: its id depends only on the starting commit and the files (fixed dates), so
        later runs copy its few objects and check it out in their clone's one git process
        instead of three. The first run checks its files out again after committing them,
        so every run's files are a checkout's (the source's attributes apply alike).
        `clone`: `clone_workspace` unless given."""
        clone = clone or clone_workspace
        files = subtest_files(subtest, catalogue)
        if not files.manifest.files:
            clone(start.repository, start.commit, destination)
            return files.manifest
        key = (start.repository, start.commit, files.manifest.sha256())
        known = self._subtest_commits.get(key)
        if known is not None:
            commit, objects = known
            for name, content in objects.items():
                target = destination / ".git" / "objects" / name
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(content)
            clone(start.repository, commit, destination)
            return files.manifest
        clone(start.repository, start.commit, destination)
        _write_and_commit(destination, files, start.date)
        git_dir = destination / ".git"
        commit = (git_dir / "refs" / "heads" / RUN_BRANCH).read_text().strip()
        objects = {
            f"{folder.name}/{loose.name}": loose.read_bytes()
            for folder in (git_dir / "objects").iterdir()
            if len(folder.name) == 2 and folder.is_dir()
            for loose in folder.iterdir()
        }
        for relative, _content in files.contents:
            (destination / relative).unlink(missing_ok=True)
        git(["read-tree", "-u", "--reset", "HEAD"], destination)
        self._subtest_commits[key] = (commit, objects)
        return files.manifest

    @staticmethod
    def _clone_remote(repo: str, staging: Path) -> None:
        git(["clone", "-q", "--no-checkout", "--no-hardlinks", repo, str(staging)], staging.parent)

    @staticmethod
    def _import_folder(folder: Path, staging: Path) -> None:
        shutil.copytree(folder, staging, symlinks=True, ignore=shutil.ignore_patterns(".git"))
        git(["init", "-q", "-b", "main"], staging)
        git(["add", "-A"], staging)
        dates = {"GIT_AUTHOR_DATE": IMPORT_DATE, "GIT_COMMITTER_DATE": IMPORT_DATE}
        git(["commit", "-q", "--allow-empty", "-m", "scylla: starting state"], staging, env=dates)


RUN_BRANCH = "scylla-run"
_WORKSPACE_CONFIG = """[core]
\trepositoryformatversion = 0
\tfilemode = true
\tbare = false
\tlogallrefupdates = true
"""


def _copy_regular_files(source: Path, target: Path) -> None:
    """Copy a folder of the cache file by file (new inodes, never hard links); a symlink or
    anything but a file or folder means the cache is not ours, as `git clone` refuses."""
    target.mkdir(parents=True, exist_ok=True)
    with os.scandir(source) as entries:
        for entry in entries:
            if entry.is_symlink():
                raise WorkspaceError(f"{entry.path}: a symlink in the source cache")
            if entry.is_dir(follow_symlinks=False):
                _copy_regular_files(Path(entry.path), target / entry.name)
            elif entry.is_file(follow_symlinks=False):
                shutil.copyfile(entry.path, target / entry.name, follow_symlinks=False)
            else:
                raise WorkspaceError(f"{entry.path}: not a file in the source cache")


def clone_workspace(repository: Path, commit: str, destination: Path) -> None:
    """The run's own repository, sharing no file with the cache (the agent will own all of
    it): the cache's objects and refs copied, the branch `scylla-run` at `commit`, checked
    out. What `git clone --no-hardlinks` and `git checkout -B` did, in one git process
    instead of five (clone runs upload-pack through a shell): a run pays for each.
    Objects already in `destination/.git/objects` are kept (a sub-test's commit, see
    `SourceCache.start_workspace`)."""
    source = repository / ".git"
    git_dir = destination / ".git"
    _copy_regular_files(source / "objects", git_dir / "objects")
    _copy_regular_files(source / "refs", git_dir / "refs")
    if (source / "packed-refs").is_file():
        shutil.copyfile(source / "packed-refs", git_dir / "packed-refs", follow_symlinks=False)
    (git_dir / "refs" / "heads" / RUN_BRANCH).write_text(commit + "\n")
    (git_dir / "HEAD").write_text(f"ref: refs/heads/{RUN_BRANCH}\n")
    (git_dir / "config").write_text(_WORKSPACE_CONFIG)
    # The index and the files, as a checkout writes them (the source's attributes apply).
    git(["read-tree", "-u", "--reset", "HEAD"], destination)


def prepare_harness_repository(
    workspace: Path, repository: Path, run_work: Path
) -> HarnessRepository:
    """The run's private repository (`<run work>/harness.git`, beside the workspace), made
    after `materialize` and before the agent: see `harness_git`."""
    return snapshot_repository(workspace, run_work / HARNESS_GIT_DIR, repository)


class MaterializedFile(BaseModel):
    path: str
    sha256: str
    source: str  # where it came from: a block id list, a catalogue file, "generated"


class ConfigManifest(BaseModel):
    """`config_manifest.json`: exactly what a sub-test put into the workspace."""

    tier: str
    subtest: str
    subtest_file: str
    blocks: list[str] = Field(default_factory=list)
    skills: list[str] = Field(default_factory=list)
    agents: list[str] = Field(default_factory=list)
    mcp_servers: list[str] = Field(default_factory=list)
    allowed_tools: list[str] | None = None
    disallowed_tools: list[str] = Field(default_factory=list)
    files: list[MaterializedFile] = Field(default_factory=list)

    def sha256(self) -> str:
        return hashlib.sha256(self.model_dump_json().encode()).hexdigest()


class SubTestFiles(NamedTuple):
    """What a sub-test puts into a workspace: the manifest, and each file's bytes in the
    order they are written (a later one with the same path wins)."""

    manifest: ConfigManifest
    contents: list[tuple[str, bytes]]


def _write(files: SubTestFiles, relative: str, content: bytes, source: str) -> None:
    files.contents.append((relative, content))
    files.manifest.files.append(
        MaterializedFile(path=relative, sha256=hashlib.sha256(content).hexdigest(), source=source)
    )


def materialize(
    workspace: Path, subtest: ResolvedSubTest, catalogue: Catalogue, *, start_date: str
) -> ConfigManifest:
    """Write the sub-test's configuration into the workspace and commit it.

    The commit takes the starting commit's date, so its id depends only on its parent and
    its tree: every run of a sub-test starts from the same commit.
    """
    files = subtest_files(subtest, catalogue)
    _write_and_commit(workspace, files, start_date)
    return files.manifest


def _write_and_commit(workspace: Path, files: SubTestFiles, start_date: str) -> None:
    for relative, content in files.contents:
        target = workspace / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
    if files.manifest.files:
        git(["add", "-A", "--", *[entry.path for entry in files.manifest.files]], workspace)
        dates = {"GIT_AUTHOR_DATE": start_date, "GIT_COMMITTER_DATE": start_date}
        git(["commit", "-q", "-m", MATERIALIZE_MESSAGE], workspace, env=dates)


def subtest_files(subtest: ResolvedSubTest, catalogue: Catalogue) -> SubTestFiles:
    """The sub-test's configuration files and manifest, read from the catalogue."""
    resources = subtest.resources
    manifest = ConfigManifest(
        tier=subtest.tier,
        subtest=subtest.id,
        subtest_file=str(subtest.source_file),
        blocks=list(resources.claude_md.blocks),
        skills=list(resources.skills),
        agents=list(resources.agents),
        mcp_servers=sorted(resources.mcp_servers),
        allowed_tools=resources.tools.allowed,
        disallowed_tools=list(resources.tools.disallowed),
    )
    files = SubTestFiles(manifest, [])
    if resources.claude_md.blocks:
        texts = []
        for block in resources.claude_md.blocks:
            block_file = catalogue.find_block(block)
            if block_file is None:
                raise WorkspaceError(f"{subtest.source_file}: block {block} not found")
            texts.append(block_file.read_text(encoding="utf-8").strip())
        _write(files, "CLAUDE.md", ("\n\n".join(texts) + "\n").encode(), "blocks")
    for agent in resources.agents:
        agent_file = catalogue.find_resource("agents", agent, ".md")
        if agent_file is None:
            raise WorkspaceError(f"{subtest.source_file}: agent {agent} not found")
        _write(
            files,
            f".claude/agents/{agent}.md",
            agent_file.read_bytes(),
            str(agent_file),
        )
    for skill in resources.skills:
        skill_dir = catalogue.find_resource("skills", skill, "")
        if skill_dir is None or not skill_dir.is_dir():
            raise WorkspaceError(f"{subtest.source_file}: skill {skill} not found")
        for path in sorted(skill_dir.rglob("*")):
            if path.is_file():
                relative = path.relative_to(skill_dir).as_posix()
                _write(
                    files,
                    f".claude/skills/{skill}/{relative}",
                    path.read_bytes(),
                    str(path),
                )
    settings_data = dict(resources.settings)
    if resources.mcp_servers:
        # Project MCP servers wait for an approval no one can give in a headless run.
        approved = list(settings_data.get("enabledMcpjsonServers", []))
        approved += [name for name in sorted(resources.mcp_servers) if name not in approved]
        settings_data["enabledMcpjsonServers"] = approved
    if settings_data:
        settings = json.dumps(settings_data, indent=2, sort_keys=True) + "\n"
        _write(files, ".claude/settings.json", settings.encode(), "generated")
    if resources.mcp_servers:
        servers = {
            name: server.model_dump() for name, server in sorted(resources.mcp_servers.items())
        }
        _write(
            files,
            ".mcp.json",
            (json.dumps({"mcpServers": servers}, indent=2) + "\n").encode(),
            "generated",
        )
        # MCP servers shipped in the catalogue run from the workspace, so every sandbox sees them.
        for layer in reversed(catalogue.layers):
            mcp_dir = layer / "mcp"
            if mcp_dir.is_dir():
                for path in sorted(mcp_dir.iterdir()):
                    if path.is_file():
                        _write(
                            files,
                            f".claude/mcp/{path.name}",
                            path.read_bytes(),
                            str(path),
                        )
    return files


def remove_tree(path: Path) -> None:
    """Remove a workspace even where an agent left read-only files behind."""

    def make_writable_and_retry(function, failed_path, _error) -> None:  # type: ignore[no-untyped-def]
        Path(failed_path).parent.chmod(0o700)
        Path(failed_path).chmod(0o700)
        function(failed_path)

    if path.exists():
        shutil.rmtree(path, onerror=make_writable_and_retry)  # onexc needs Python 3.12
