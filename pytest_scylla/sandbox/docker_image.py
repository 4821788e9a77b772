"""Build the images the docker sandbox runs, fully offline.

No registry can be reached, so nothing is pulled: the base image is a debootstrap'ed
Debian bookworm (packages come from the machine's own apt mirror, read from its apt
configuration at runtime), imported through the Docker API; ``scylla-runner`` is built on
top of it from the build context shipped in the package (``pytest_scylla/sandbox/image``:
Dockerfile, entrypoint, init) with the Claude Code CLI copied out of the installed
claude-agent-sdk wheel.

Every image carries a label with a hash of its inputs' contents (never their paths or
mtimes), so ``ensure_images()`` rebuilds only what changed, and every environment with the
same inputs shares one image. Run ``python -m pytest_scylla.sandbox.docker_image [--force]``.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path

import docker
import docker.errors
from docker.models.images import Image

from pytest_scylla.agents.claude_code import bundled_claude

BASE_REPO = "scylla-base"
BASE_TAG = "bookworm"
BASE_IMAGE = f"{BASE_REPO}:{BASE_TAG}"
RUNNER_REPO = "scylla-runner"
RUNNER_TAG = "latest"
RUNNER_IMAGE = f"{RUNNER_REPO}:{RUNNER_TAG}"

SUITE = "bookworm"
VARIANT = "minbase"
# procps gives the agent ps/kill/pkill, which coding agents use to manage their processes.
# tini was PID 1 of the containers until image/scylla-init.py took over (kill(-1) spares
# only PID 1, so PID 1 must be the process that stays); it is kept only so that changing
# this list does not force every machine to rebuild its base.
INCLUDE = ("python3", "python-is-python3", "git", "ca-certificates", "tini", "procps")
# Bump when the base recipe changes in a way INCLUDE/SUITE/VARIANT do not show.
BASE_RECIPE_VERSION = "1"

INPUTS_LABEL = "scylla.inputs"
MANAGED_LABEL = "scylla.managed"

# Package data, not a folder beside the package: an installed wheel has no repository, and
# a top-level "docker" folder would shadow the Docker SDK when run from a checkout.
BUILD_CONTEXT: Traversable = files("pytest_scylla.sandbox") / "image"

Progress = Callable[[str], None]


class ImageBuildError(RuntimeError):
    """An image could not be built; the message says which step failed and why."""


@dataclass(frozen=True)
class BuildReport:
    """What ensure_images() did, for logs and benchmarks."""

    base_built: bool
    runner_built: bool
    base_s: float
    runner_s: float


def silent(_: str) -> None:
    """A progress callback that shows nothing."""


# ---------------------------------------------------------------- apt mirror discovery


def _one_line_entries(text: str) -> Iterator[tuple[str, list[str], list[str]]]:
    """(uri, suites, components) of the ``deb`` lines of a sources.list file."""
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line.startswith("deb "):
            continue
        line = re.sub(r"\[[^\]]*\]", " ", line)  # drop "[signed-by=... arch=...]" options
        parts = line.split()
        if len(parts) >= 3:
            yield parts[1], [parts[2]], parts[3:]


def _deb822_entries(text: str) -> Iterator[tuple[str, list[str], list[str]]]:
    """(uri, suites, components) of the stanzas of a deb822 ``.sources`` file."""
    for stanza in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        for raw in stanza.splitlines():
            if raw.startswith("#") or ":" not in raw or raw[:1].isspace():
                continue
            key, value = raw.split(":", 1)
            fields[key.strip().lower()] = value.strip()
        if "deb" not in fields.get("types", "").split():
            continue
        if fields.get("enabled", "yes").lower() == "no":
            continue
        suites = fields.get("suites", "").split()
        components = fields.get("components", "").split()
        for uri in fields.get("uris", "").split():
            yield uri, suites, components


def apt_mirror(suite: str = SUITE, apt_dir: Path = Path("/etc/apt")) -> str:
    """The Debian mirror this machine's apt already uses for ``suite`` (main component).

    Read at runtime so that no registry host is written into the project: the build uses
    whatever mirror (or local proxy) the machine is configured for.
    """
    candidates: list[tuple[Path, bool]] = []
    if (apt_dir / "sources.list").is_file():
        candidates.append((apt_dir / "sources.list", False))
    listdir = apt_dir / "sources.list.d"
    if listdir.is_dir():
        for path in sorted(listdir.iterdir()):
            # Files renamed to *.disabled* (or anything else) are ignored by apt; so are we.
            if path.suffix == ".list":
                candidates.append((path, False))
            elif path.suffix == ".sources":
                candidates.append((path, True))
    for path, deb822 in candidates:
        text = path.read_text(encoding="utf-8", errors="replace")
        entries = _deb822_entries(text) if deb822 else _one_line_entries(text)
        for uri, suites, components in entries:
            if suite in suites and "main" in components:
                return uri
    raise ImageBuildError(
        f"no apt source for '{suite} main' in {apt_dir}/sources.list(.d): "
        "debootstrap needs a reachable Debian mirror"
    )


# ---------------------------------------------------------------- input hashes


def _sha(parts: list[bytes]) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(hashlib.sha256(part).digest())
    return h.hexdigest()[:32]


def base_inputs_hash() -> str:
    # The mirror is left out on purpose: two mirrors of the same suite give the same image.
    recipe = {"suite": SUITE, "variant": VARIANT, "include": INCLUDE, "v": BASE_RECIPE_VERSION}
    return _sha([json.dumps(recipe, sort_keys=True).encode()])


def claude_binary() -> Path:
    """The Claude Code CLI bundled with the installed claude-agent-sdk wheel."""
    path = bundled_claude()
    if path is None:
        raise ImageBuildError(
            "the scylla-runner image carries the Claude Code CLI bundled with "
            "claude-agent-sdk, which is not installed: pip install 'pytest-scylla[claude]'"
        )
    return path


def _recorded_sha256(path: Path) -> str | None:
    """The sha256 (hex) the installed claude-agent-sdk's RECORD gives for ``path``, when its
    size there is the file's size; None for a file no RECORD lists."""
    try:
        dist = importlib.metadata.distribution("claude-agent-sdk")
    except importlib.metadata.PackageNotFoundError:
        return None
    size = path.stat().st_size
    for entry in dist.files or ():
        if entry.name != path.name or entry.hash is None or entry.hash.mode != "sha256":
            continue
        if entry.size != size or Path(str(dist.locate_file(entry))).resolve() != path.resolve():
            continue
        return base64.urlsafe_b64decode(entry.hash.value + "==").hex()
    return None


def claude_digest(path: Path) -> str:
    """sha256 of the CLI's content. Reading the ~400 MB binary costs 0.7 s warm (more
    cold: bench_docker.py), so the wheel's RECORD (pip checked it at install) answers when
    it lists this very file at this size; mtimes and paths never count: byte-identical CLIs
    in two environments share one image. A binary rewritten in place at the same size
    keeps its recorded digest: ``--scylla-build-image`` rebuilds then."""
    recorded = _recorded_sha256(path)
    if recorded is not None:
        return recorded
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def context_files(context: Traversable = BUILD_CONTEXT) -> list[tuple[str, bytes]]:
    """(name, content) of the build context's files, sorted by name."""
    found = sorted(
        (entry.name, entry.read_bytes()) for entry in context.iterdir() if entry.is_file()
    )
    if "Dockerfile" not in {name for name, _ in found}:
        raise ImageBuildError(
            f"no Dockerfile in {context}: this pytest-scylla installation lacks its image "
            "build context (reinstall pytest-scylla)"
        )
    return found


def runner_inputs_hash(
    base_id: str, context: Traversable = BUILD_CONTEXT, claude: Path | None = None
) -> str:
    parts = [base_id.encode(), claude_digest(claude or claude_binary()).encode()]
    for name, content in context_files(context):
        parts.append(name.encode() + b"\0" + content)
    return _sha(parts)


def _image_id(client: docker.DockerClient, ref: str) -> str | None:
    try:
        return str(client.images.get(ref).id)
    except docker.errors.ImageNotFound:
        return None


def _drop_replaced(client: docker.DockerClient, old_id: str | None, ref: str) -> None:
    """Delete the image a rebuild replaced: each stale runner is ~1 GB of disk."""
    if old_id is None or old_id == _image_id(client, ref):
        return
    # Still used by a container or as a parent: keep it, docker refuses anyway.
    with contextlib.suppress(docker.errors.APIError):
        client.images.remove(old_id)


def _labelled_image(client: docker.DockerClient, ref: str, inputs: str) -> Image | None:
    try:
        image = client.images.get(ref)
    except docker.errors.ImageNotFound:
        return None
    labels = (image.attrs.get("Config") or {}).get("Labels") or {}
    return image if labels.get(INPUTS_LABEL) == inputs else None


# ---------------------------------------------------------------- base image


def _debootstrap(target: Path, mirror: str, progress: Progress) -> None:
    if shutil.which("debootstrap") is None:
        raise ImageBuildError("debootstrap not found: apt-get install debootstrap")
    if os.geteuid() != 0:
        raise ImageBuildError("building the base image needs root (debootstrap): run as root")
    argv = [
        "debootstrap",
        f"--variant={VARIANT}",
        f"--include={','.join(INCLUDE)}",
        SUITE,
        str(target),
        mirror,
    ]
    progress(f"debootstrap {SUITE} from {mirror}")
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    tail: list[str] = []
    for line in proc.stdout:
        line = line.rstrip()
        tail = [*tail[-19:], line]
        if line.startswith(("I: Retrieving", "I: Validating")):
            continue  # one per package: too chatty for a progress line
        progress(f"debootstrap: {line}")
    if proc.wait() != 0:
        raise ImageBuildError("debootstrap failed:\n" + "\n".join(tail))


def _trim_rootfs(root: Path) -> None:
    """Drop what an image does not need: downloaded .debs and apt lists (~100 MB)."""
    for sub in ("var/cache/apt/archives", "var/lib/apt/lists"):
        directory = root / sub
        if directory.is_dir():
            for entry in directory.iterdir():
                if entry.is_file() and entry.name != "lock":
                    entry.unlink()
    for pattern in ("var/cache/apt/*.bin", "var/log/*.log"):
        for path in root.glob(pattern):
            path.unlink()


def _build_base(client: docker.DockerClient, inputs: str, progress: Progress) -> None:
    mirror = apt_mirror()
    # /var/tmp: a rootfs is too large for a tmpfs /tmp on some machines.
    with tempfile.TemporaryDirectory(prefix="scylla-base-", dir="/var/tmp") as tmp:
        root = Path(tmp) / "rootfs"
        _debootstrap(root, mirror, progress)
        _trim_rootfs(root)
        tar_path = Path(tmp) / "rootfs.tar"
        progress("packing rootfs")
        with tarfile.open(tar_path, "w") as tar:
            # numeric owners: the image must not depend on the host's user names.
            tar.add(root, arcname=".", filter=_numeric_owner)
        progress(f"importing {BASE_IMAGE} ({tar_path.stat().st_size // 2**20} MiB)")
        changes = [
            f'LABEL {INPUTS_LABEL}="{inputs}" {MANAGED_LABEL}="1"',
            'ENV PATH="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"',
            'CMD ["/bin/bash"]',
        ]
        client.api.import_image_from_file(
            str(tar_path), repository=BASE_REPO, tag=BASE_TAG, changes=changes
        )


def _numeric_owner(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.uname = ""
    info.gname = ""
    return info


# ---------------------------------------------------------------- runner image


def _build_runner(
    client: docker.DockerClient,
    inputs: str,
    progress: Progress,
    context: Traversable,
    binary: Path,
    tag: str,
) -> None:
    with tempfile.TemporaryDirectory(prefix="scylla-runner-ctx-", dir="/var/tmp") as tmp:
        ctx = Path(tmp)
        for name, content in context_files(context):
            (ctx / name).write_bytes(content)
            # COPY keeps context modes; entrypoint.sh must be executable whatever the
            # checkout or the wheel's installer did to it.
            (ctx / name).chmod(0o755 if name.endswith(".sh") else 0o644)
        try:
            os.link(binary, ctx / "claude")  # same filesystem: no 400 MB copy
        except OSError:
            shutil.copy2(binary, ctx / "claude")
        if (ctx / "claude").stat().st_mode & 0o555 != 0o555:
            (ctx / "claude").chmod(0o755)
        size_mib = (ctx / "claude").stat().st_size // 2**20
        progress(f"building {tag} (sending a {size_mib} MiB context)")
        stream = client.api.build(
            path=str(ctx),
            tag=tag,
            labels={INPUTS_LABEL: inputs, MANAGED_LABEL: "1"},
            buildargs={"BASE_IMAGE": BASE_IMAGE},
            rm=True,
            forcerm=True,
            decode=True,
            # The legacy builder runs RUN steps on docker's default bridge unless told
            # otherwise; these engines have none (dockerd --bridge=none) and need none.
            network_mode="none",
            timeout=1800,
        )
        for event in stream:
            if "error" in event:
                raise ImageBuildError(f"building {tag} failed: {event['error']}")
            text = str(event.get("stream", "")).strip()
            if text:
                progress(text)


# ---------------------------------------------------------------- entry points


def ensure_images(
    force: bool = False,
    progress: Progress = silent,
    client: docker.DockerClient | None = None,
    context: Traversable = BUILD_CONTEXT,
    claude: Path | None = None,
    runner_image: str = RUNNER_IMAGE,
) -> BuildReport:
    """Make sure scylla-base and scylla-runner exist and match their inputs.

    ``force`` rebuilds both even when their labels match (``--scylla-build-image``).
    ``context``, ``claude`` and ``runner_image`` replace the shipped recipe, the bundled
    CLI and the runner's tag (tests build a small runner of their own with them).
    """
    # Before any build: a missing CLI is the user's to fix, not a half-built pair of images.
    binary = claude or claude_binary()
    client = client or docker.from_env(timeout=300)
    base_inputs = base_inputs_hash()
    t0 = time.monotonic()
    base = None if force else _labelled_image(client, BASE_IMAGE, base_inputs)
    base_built = base is None
    old_base = _image_id(client, BASE_IMAGE)
    if base is None:
        progress(f"building {BASE_IMAGE} (about a minute)")
        _build_base(client, base_inputs, progress)
        base = client.images.get(BASE_IMAGE)
    t1 = time.monotonic()
    runner_inputs = runner_inputs_hash(str(base.id), context, binary)
    runner_built = force or _labelled_image(client, runner_image, runner_inputs) is None
    if runner_built:
        old_runner = _image_id(client, runner_image)
        _build_runner(client, runner_inputs, progress, context, binary, runner_image)
        _drop_replaced(client, old_runner, runner_image)
    if base_built:
        # After the runner: the old runner was the last user of the old base.
        _drop_replaced(client, old_base, BASE_IMAGE)
    if not (base_built or runner_built):
        progress(f"{BASE_IMAGE} and {runner_image} are up to date")
    t2 = time.monotonic()
    return BuildReport(base_built, runner_built, t1 - t0, t2 - t1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Build the scylla-base and scylla-runner images.")
    parser.add_argument("--force", action="store_true", help="rebuild even when up to date")
    args = parser.parse_args(argv)
    started = time.monotonic()
    try:
        report = ensure_images(force=args.force, progress=lambda line: print(line, flush=True))
    except (ImageBuildError, docker.errors.DockerException) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(
        f"done in {time.monotonic() - started:.1f}s "
        f"(base {'built' if report.base_built else 'cached'} {report.base_s:.1f}s, "
        f"runner {'built' if report.runner_built else 'cached'} {report.runner_s:.1f}s)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
