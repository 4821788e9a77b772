"""Per-run workspaces: a cached source repository, a cheap clone of it, the sub-test on top.

The source is turned into a git repository once per experiment and source version (under a
file lock, since xdist workers race for it); each run clones it locally (hard links, no
copy), materializes its sub-test's resources, and commits them, so the diff the judge sees
holds the agent's changes only.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path
from typing import NamedTuple

from filelock import FileLock
from pydantic import BaseModel, Field

from pytest_scylla.spec.catalogue import Catalogue, ResolvedSubTest
from pytest_scylla.spec.load_experiment import Experiment

MATERIALIZE_MESSAGE = "scylla: materialize sub-test"
# Run on files an agent (maybe another uid, in a container) wrote: skip git's owner check.
GIT = (
    "git",
    "-c",
    "safe.directory=*",
    "-c",
    "core.hooksPath=/dev/null",
    "-c",
    "commit.gpgsign=false",
)
GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "scylla",
    "GIT_AUTHOR_EMAIL": "scylla@scylla.invalid",
    "GIT_COMMITTER_NAME": "scylla",
    "GIT_COMMITTER_EMAIL": "scylla@scylla.invalid",
    "GIT_CONFIG_NOSYSTEM": "1",
    "HOME": "/nonexistent",
    "PATH": "/usr/local/bin:/usr/bin:/bin",
}


class WorkspaceError(RuntimeError):
    """The workspace could not be prepared: an infrastructure error, not the agent's."""


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


class SourceCache:
    """Starting repositories, each prepared once: `<cache>/<experiment>-<version>`."""

    def __init__(self, cache_dir: Path) -> None:
        self.cache_dir = cache_dir
        # Hashing a shipped repository reads all of it: once per process, not once per run.
        self._versions: dict[Path, str] = {}
        self._commits: dict[tuple[Path, str], StartingPoint] = {}  # by (repository, ref)

    def repository(self, experiment: Experiment) -> StartingPoint:
        """The cached repository and the commit runs start from."""
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        if experiment.source_dir is not None:
            version = self._versions.get(experiment.source_dir) or _tree_hash(experiment.source_dir)
            self._versions[experiment.source_dir] = version
            target = self.cache_dir / f"{experiment.id}-{version}"
            with FileLock(str(target) + ".lock"):
                if not (target / ".git").is_dir():
                    self._import_folder(experiment.source_dir, target)
            return self._resolve(target, "HEAD")
        source = experiment.spec.source
        if source.repo is None:
            raise WorkspaceError(
                f"{experiment.test_file}: source: neither 'path' nor 'repo' is given"
            )
        name = hashlib.sha256(source.repo.encode()).hexdigest()[:12]
        target = self.cache_dir / f"{experiment.id}-{name}"
        with FileLock(str(target) + ".lock"):
            if not (target / ".git").is_dir():
                staging = target.with_name(target.name + ".partial")
                shutil.rmtree(staging, ignore_errors=True)
                git(["clone", "-q", "--no-checkout", source.repo, str(staging)], self.cache_dir)
                staging.rename(target)
        return self._resolve(target, source.hash or source.ref or "HEAD")

    def _resolve(self, repository: Path, ref: str) -> StartingPoint:
        """The commit a ref names; the cache is never updated, so once per process is enough."""
        key = (repository, ref)
        if key not in self._commits:
            shown = git(["show", "-s", "--format=%H%n%cI", f"{ref}^{{commit}}"], repository)
            commit, date = shown.split()
            self._commits[key] = StartingPoint(repository, commit, date)
        return self._commits[key]

    def _import_folder(self, folder: Path, target: Path) -> None:
        staging = target.with_name(target.name + ".partial")
        shutil.rmtree(staging, ignore_errors=True)
        shutil.copytree(folder, staging, symlinks=True, ignore=shutil.ignore_patterns(".git"))
        git(["init", "-q", "-b", "main"], staging)
        git(["add", "-A"], staging)
        git(["commit", "-q", "--allow-empty", "-m", "scylla: starting state"], staging)
        staging.rename(target)


def clone_workspace(repository: Path, commit: str, destination: Path) -> None:
    git(["clone", "-q", "--no-checkout", str(repository), str(destination)], repository.parent)
    git(["checkout", "-q", "-B", "scylla-run", commit], destination)


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


def _write(
    workspace: Path, relative: str, content: bytes, source: str, manifest: ConfigManifest
) -> None:
    target = workspace / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(content)
    manifest.files.append(
        MaterializedFile(path=relative, sha256=hashlib.sha256(content).hexdigest(), source=source)
    )


def materialize(
    workspace: Path, subtest: ResolvedSubTest, catalogue: Catalogue, *, start_date: str
) -> ConfigManifest:
    """Write the sub-test's configuration into the workspace and commit it.

    The commit takes the starting commit's date, so its id depends only on its parent and
    its tree: every run of a sub-test starts from the same commit.
    """
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
    if resources.claude_md.blocks:
        texts = []
        for block in resources.claude_md.blocks:
            block_file = catalogue.find_block(block)
            if block_file is None:
                raise WorkspaceError(f"{subtest.source_file}: block {block} not found")
            texts.append(block_file.read_text(encoding="utf-8").strip())
        _write(workspace, "CLAUDE.md", ("\n\n".join(texts) + "\n").encode(), "blocks", manifest)
    for agent in resources.agents:
        agent_file = catalogue.find_resource("agents", agent, ".md")
        if agent_file is None:
            raise WorkspaceError(f"{subtest.source_file}: agent {agent} not found")
        _write(
            workspace,
            f".claude/agents/{agent}.md",
            agent_file.read_bytes(),
            str(agent_file),
            manifest,
        )
    for skill in resources.skills:
        skill_dir = catalogue.find_resource("skills", skill, "")
        if skill_dir is None or not skill_dir.is_dir():
            raise WorkspaceError(f"{subtest.source_file}: skill {skill} not found")
        for path in sorted(skill_dir.rglob("*")):
            if path.is_file():
                relative = path.relative_to(skill_dir).as_posix()
                _write(
                    workspace,
                    f".claude/skills/{skill}/{relative}",
                    path.read_bytes(),
                    str(path),
                    manifest,
                )
    settings_data = dict(resources.settings)
    if resources.mcp_servers:
        # Project MCP servers wait for an approval no one can give in a headless run.
        approved = list(settings_data.get("enabledMcpjsonServers", []))
        approved += [name for name in sorted(resources.mcp_servers) if name not in approved]
        settings_data["enabledMcpjsonServers"] = approved
    if settings_data:
        settings = json.dumps(settings_data, indent=2, sort_keys=True) + "\n"
        _write(workspace, ".claude/settings.json", settings.encode(), "generated", manifest)
    if resources.mcp_servers:
        servers = {
            name: server.model_dump() for name, server in sorted(resources.mcp_servers.items())
        }
        _write(
            workspace,
            ".mcp.json",
            (json.dumps({"mcpServers": servers}, indent=2) + "\n").encode(),
            "generated",
            manifest,
        )
        # MCP servers shipped in the catalogue run from the workspace, so every sandbox sees them.
        for layer in reversed(catalogue.layers):
            mcp_dir = layer / "mcp"
            if mcp_dir.is_dir():
                for path in sorted(mcp_dir.iterdir()):
                    if path.is_file():
                        _write(
                            workspace,
                            f".claude/mcp/{path.name}",
                            path.read_bytes(),
                            str(path),
                            manifest,
                        )
    if manifest.files:
        git(["add", "-A", "--", *[entry.path for entry in manifest.files]], workspace)
        dates = {"GIT_AUTHOR_DATE": start_date, "GIT_COMMITTER_DATE": start_date}
        git(["commit", "-q", "-m", MATERIALIZE_MESSAGE], workspace, env=dates)
    return manifest


class DiffSummary(BaseModel):
    files: list[str]
    files_changed: int
    insertions: int
    deletions: int
    diff: str


def summarize_changes(workspace: Path) -> DiffSummary:
    """What the agent changed since the materialized starting commit, untracked files included."""
    git(["add", "-A", "--intent-to-add", "."], workspace, check=False)
    # One diff for both: the numstat lines, a blank line, then the patch. Paths with
    # newlines come quoted, so the first blank line is the separator.
    combined = git(
        ["diff", "--no-color", "--no-ext-diff", "--numstat", "--patch", "HEAD"], workspace
    )
    numstat, _, diff = combined.partition("\n\n")
    insertions = deletions = changed = 0
    for line in numstat.splitlines():
        added, removed, _path = line.split("\t", 2)
        changed += 1
        insertions += int(added) if added.isdigit() else 0
        deletions += int(removed) if removed.isdigit() else 0
    files = git(["ls-files", "--cached", "--others", "--exclude-standard"], workspace).splitlines()
    return DiffSummary(
        files=sorted(set(files)),
        files_changed=changed,
        insertions=insertions,
        deletions=deletions,
        diff=diff,
    )


def remove_tree(path: Path) -> None:
    """Remove a workspace even where an agent left read-only files behind."""

    def make_writable_and_retry(function, failed_path, _error) -> None:  # type: ignore[no-untyped-def]
        Path(failed_path).parent.chmod(0o700)
        Path(failed_path).chmod(0o700)
        function(failed_path)

    if path.exists():
        shutil.rmtree(path, onerror=make_writable_and_retry)  # onexc needs Python 3.12
