"""The bubblewrap command line that isolates one local process.

The process sees a root built from an allow-list, not the host with holes punched in it:
the system read-only (``/usr``, ``/etc``, ``/bin``, ``/lib*``...), its run's workspace and
home writable, its inputs read-only, a fresh ``/proc``, ``/dev`` and private ``/tmp``.
Everything else is simply absent: the experiment (rubric, solution, ``config.yaml``), the
results folder, other runs' workspaces, the source cache and the real home (``~/.claude``).

Tools the run needs may live inside the hidden home (pyenv's Python, the CLI bundled in the
Python package ``claude-agent-sdk``): the Python prefixes in use, the ``PATH`` entries and
the program's own folder are shown read-only, unless one of them holds or lies inside a
path that must stay hidden. A version manager's shims folder (``<root>/shims`` beside
``<root>/versions``: pyenv, rbenv, nodenv) runs ``<root>/libexec``, so its whole root is shown.

A new PID namespace: ``/proc`` shows no process of the harness (nor its environment), and
when the namespace's first process ends the kernel kills every other one, ``setsid``
included. ``--die-with-parent`` takes the namespace down when the harness dies, even by
SIGKILL. All capabilities are dropped (bwrap's default, made explicit). The network is
shared: an agent must reach a loopback API.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from pytest_scylla.sandbox.base import RunDirs

# Shown read-only where they exist; a symlink (``/bin -> usr/bin``) is recreated as one.
SYSTEM_PATHS = ("/usr", "/etc", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
# Secrets of the system inside /etc: the sandboxed process runs as the harness's uid (root
# on CI), which may read them; an empty file or folder is shown in their place.
ETC_SECRETS = (
    "/etc/shadow",
    "/etc/shadow-",
    "/etc/gshadow",
    "/etc/gshadow-",
    "/etc/sudoers",
    "/etc/sudoers.d",
    "/etc/ssh",
    "/etc/ssl/private",
)
# Inside the real home, never shown even when a PATH entry asks for it.
HOME_SECRETS = (".claude", ".claude.json", ".ssh", ".aws", ".config", ".gnupg", ".docker")
_PROBE_TIMEOUT_S = 10


def bwrap_binary() -> str | None:
    return shutil.which("bwrap")


@functools.cache
def bwrap_problem() -> str | None:
    """None when bubblewrap can build a sandbox here, else why not (one line).

    Asked once per process: a container without user namespaces or mount rights has a
    ``bwrap`` that cannot create namespaces.
    """
    binary = bwrap_binary()
    if binary is None:
        return "bubblewrap (bwrap) is not installed"
    probe = [binary, *_system_mounts(), "--proc", "/proc", "--dev", "/dev", "--unshare-pid"]
    try:
        done = subprocess.run(
            [*probe, "--die-with-parent", "--", "true"],
            capture_output=True,
            timeout=_PROBE_TIMEOUT_S,
            env={"PATH": "/usr/bin:/bin"},
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"bubblewrap cannot run: {error}"
    if done.returncode != 0:
        detail = done.stderr.decode(errors="replace").strip().splitlines()
        return "bubblewrap cannot create namespaces here" + (f": {detail[-1]}" if detail else "")
    return None


@functools.cache
def _system_mounts() -> tuple[str, ...]:
    """The same for every run of the process: computed once."""
    mounts: list[str] = []
    for path in SYSTEM_PATHS:
        if os.path.islink(path):
            mounts += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            mounts += ["--ro-bind", path, path]
    for path in ETC_SECRETS:
        if os.path.islink(path):
            continue  # its target is either hidden here or outside what is shown
        if os.path.isdir(path):
            mounts += ["--tmpfs", path, "--remount-ro", path]
        elif os.path.exists(path):
            mounts += ["--ro-bind", "/dev/null", path]
    return tuple(mounts)


def _within(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip("/") + "/")


@functools.cache
def _resolved_system_paths() -> tuple[str, ...]:
    """Once per process: resolving them for every folder of every sandbox start cost more
    than the rest of building bubblewrap's command line."""
    return tuple(os.path.realpath(path) for path in SYSTEM_PATHS)


def _under_system(path: str) -> bool:
    return any(_within(path, folder) for folder in _resolved_system_paths())


def _tool_root(folder: str) -> str:
    """A version manager's shims run scripts from its root: show the root, not the shims."""
    parent = os.path.dirname(folder)
    if os.path.basename(folder) == "shims" and os.path.isdir(os.path.join(parent, "versions")):
        return parent
    return folder


def hidden_paths(extra: Iterable[Path | str] = ()) -> list[str]:
    """Paths no sandboxed process may see: the home's secrets plus the caller's (results,
    experiments, the work root); resolved, so a symlinked folder is matched too."""
    home = os.path.expanduser("~")
    found = [os.path.join(home, name) for name in HOME_SECRETS]
    config_dir = os.environ.get("CLAUDE_CONFIG_DIR")
    if config_dir:
        found.append(config_dir)
    found += [str(path) for path in extra]
    return sorted({os.path.realpath(path) for path in found})


def readonly_extras(
    argv: Sequence[str], env: Mapping[str, str], hidden: Sequence[str]
) -> list[str]:
    """Folders outside the system paths that the process needs, shown read-only."""
    wanted: list[str] = [sys.prefix, sys.base_prefix]
    search_path = env.get("PATH", "")
    wanted += [entry for entry in search_path.split(os.pathsep) if os.path.isabs(entry)]
    program = shutil.which(argv[0], path=search_path) if argv else None
    # The program's own folder, and any other program named by absolute path (a wrapper's
    # ``exec "$@"``): a symlink in PATH may point into a folder PATH does not list.
    for candidate in [program, *argv[1:]]:
        if candidate is None:
            continue
        executable = os.path.isabs(candidate) and os.access(candidate, os.X_OK)
        if executable and os.path.isfile(candidate):
            wanted.append(os.path.dirname(os.path.realpath(candidate)))
    shown: list[str] = []
    for folder in wanted:
        real = _tool_root(os.path.realpath(folder))
        if not os.path.isdir(real) or _under_system(real):
            continue
        # Neither a hidden path nor anything holding one (``/``, the home, ``/tmp``).
        if any(_within(real, secret) or _within(secret, real) for secret in hidden):
            continue
        if not any(_within(real, other) for other in shown):
            shown = [other for other in shown if not _within(other, real)] + [real]
    return sorted(shown)


def bwrap_argv(
    binary: str,
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    dirs: RunDirs,
    cwd: str,
    hidden: Sequence[str],
) -> list[str]:
    """The full command line: bwrap, its mounts and options, then argv."""
    command = [binary, *_system_mounts(), "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"]
    # After /tmp's tmpfs, so folders under /tmp are mounted on top of it, not hidden by it.
    for folder in readonly_extras(argv, env, hidden):
        command += ["--ro-bind", folder, folder]
    command += ["--bind", str(dirs.workspace), str(dirs.workspace)]
    command += ["--bind", str(dirs.home), str(dirs.home)]
    command += ["--ro-bind", str(dirs.inputs), str(dirs.inputs)]
    command += [
        "--unshare-pid",
        # The command is the namespace's first process, a child of bwrap itself: bwrap's own
        # init would be orphaned when bwrap exits and left to us (a subreaper) as a zombie.
        # Orphans inside are reaped when the namespace ends, with the command.
        "--as-pid-1",
        "--unshare-ipc",
        "--die-with-parent",
        "--new-session",
        "--cap-drop",
        "ALL",
        "--chdir",
        cwd,
        "--",
        *argv,
    ]
    return command
