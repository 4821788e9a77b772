"""The docker sandbox: one long-lived ``scylla-runner`` container per run.

``open()`` creates and starts the container (its PID 1, ``image/scylla-init.py``, idles);
every ``run()`` is a ``docker exec`` in it; ``close()`` removes it with force. Only the
three run directories are mounted (plus the session's lease file and, on request, a private
copy of the host's Claude credentials file, both read-only); API keys arrive only through
the ``env`` of ``run()``. Everything goes through the Docker SDK, never the docker CLI.

What holds the agent (DESIGN.md section 8):
* non-root user, ``cap_drop=ALL``, no-new-privileges, memory/CPU/pids limits, network
  ``none`` unless asked, a read-only root filesystem with small tmpfs for the few
  world-writable directories (so the container's own layer cannot fill the disk), and a
  ``size`` storage option where the storage driver supports one;
* the workspace and home are bind mounts no driver bounds: ``disk_guard.DiskGuard`` watches
  them while a process runs and the run is killed past the limit;
* nothing outlives a run: the exec wrapper kills what a process left behind when it exits,
  and a timeout (or a full disk, or a last word followed by silence) makes PID 1 kill every
  other process (SIGUSR1), keeping the container for the next process;
* nothing outlives a session: the factory renews a lease file every few seconds; PID 1 of
  a container whose lease went stale (the session was SIGKILLed) kills everything and
  exits, and ``auto_remove`` removes the container. ``sweep_stale()`` is the backstop.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import re
import shutil
import socket
import stat
import tempfile
import threading
import time
import uuid
import weakref
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Literal

import docker
import docker.errors
from docker.models.containers import Container
from pydantic import BaseModel, ConfigDict, Field, field_validator

from pytest_scylla.credentials import login_file_path, read_login_file
from pytest_scylla.redact import StreamRedactor
from pytest_scylla.sandbox.base import (
    ProcessOutcome,
    RunDirs,
    SandboxError,
    SandboxPaths,
    StopWhen,
)
from pytest_scylla.sandbox.disk_guard import (
    CHECK_EVERY_S,
    DEFAULT_DISK_LIMIT,
    DiskGuard,
    parse_size,
)
from pytest_scylla.sandbox.docker_image import RUNNER_IMAGE, Progress, ensure_images, silent
from pytest_scylla.sandbox.local import proc_stat_fields

if TYPE_CHECKING:
    from pytest_scylla.redact import Redactor

WORKSPACE = "/workspace"
HOME = "/home/scylla"
INPUTS = "/scylla/inputs"
LEASE_TARGET = "/scylla/lease"
CREDENTIALS_TARGET = f"{HOME}/.claude/.credentials.json"
ENTRYPOINT = "/usr/local/bin/scylla-entrypoint"
IMAGE_UID = 1000  # the scylla user baked into image/Dockerfile

LABEL_MANAGED = "scylla.managed"
LABEL_SESSION = "scylla.session"
LABEL_RUN = "scylla.run"
LABEL_OWNER_PID = "scylla.owner.pid"
LABEL_OWNER_HOST = "scylla.owner.host"
LABEL_OWNER_START = "scylla.owner.start"

# Host folder of one factory (lease file, credentials copies): scylla-docker-<pid>-<start>-*
SESSION_DIR_PREFIX = "scylla-docker-"
_SESSION_DIR = re.compile(rf"^{SESSION_DIR_PREFIX}(\d+)-(\d*)-")

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_KILL_GRACE_S = 10.0  # how long to wait for the exec stream to end after a kill
# After stop_when matched: time to exit by itself before the kill (the local sandbox's too).
LAST_WORD_GRACE_S = 2.0
LEASE_RENEW_S = 2.0
# Within the session that owns it, a container never sees a lease this old unless the
# session is stopped (SIGSTOP) or starved for this long; then it ends like a killed one.
LEASE_STALE_S = 20.0
# World-writable directories of the image; the root filesystem itself is read-only.
_TMPFS = ("/tmp", "/var/tmp", "/run/lock")
# Where "size" in storage_opt bounds a container's writable layer (overlay2 only on xfs
# mounted with pquota, which docker info cannot show: tried once, remembered).
_SIZED_DRIVERS = ("btrfs", "zfs", "devicemapper", "windowsfilter")
_STREAM_LINE_CAP = 16 * 2**20  # longest stdout line stop_when is shown


class DockerSettings(BaseModel):
    """How docker sandboxes are created (from the plugin's --docker-* options)."""

    model_config = ConfigDict(extra="forbid")

    image: str = RUNNER_IMAGE
    # "bridge" is docker's own default network; this project never creates one.
    network: Literal["none", "host", "bridge"] = "none"
    memory: str = "4g"
    cpus: float = Field(default=2.0, gt=0)
    pids: int = Field(default=512, gt=0)
    # Bytes the workspace and home may hold together (and the writable layer, where the
    # storage driver can bound it); a run past it is killed.
    disk: str = DEFAULT_DISK_LIMIT
    disk_check_every_s: float = Field(default=CHECK_EVERY_S, gt=0)
    tmpfs_size: str = "512m"  # each of /tmp, /var/tmp (memory, counted in `memory`)
    lease_stale_s: float = Field(default=LEASE_STALE_S, gt=0)
    mount_credentials: bool = False
    # None: the host user's Claude login (credentials.login_file_path), when it is usable.
    credentials_file: Path | None = None
    # None: DOCKER_HOST from the environment, else the default unix socket.
    docker_host: str | None = None

    @field_validator("disk", "tmpfs_size")
    @classmethod
    def _size(cls, value: str) -> str:
        if parse_size(value) <= 0:
            raise ValueError("must be more than 0 bytes")
        return value

    @property
    def disk_bytes(self) -> int:
        return parse_size(self.disk)


def _engine_url(settings: DockerSettings) -> str:
    return settings.docker_host or os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"


def _process_start(pid: int) -> str:
    """Start time of pid in clock ticks since boot ("" when unknown): tells pid reuse apart."""
    fields = proc_stat_fields(pid)
    # Field 22 of the file; proc_stat_fields starts at field 3.
    return fields[19] if fields is not None and len(fields) > 19 else ""


def _pid_alive(pid: int, start: str) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by someone else
    return not start or _process_start(pid) in ("", start)


# ---------------------------------------------------------------- run dir ownership


def _unshare(path: str, info: os.stat_result) -> None:
    """Give a regular file with several hard links an inode of its own (same content,
    mode and times), so a chown reaches this name only, never the other links."""
    directory, name = os.path.split(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".unshare", dir=directory)
    try:
        with os.fdopen(fd, "wb") as copy:
            source = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
            with os.fdopen(source, "rb") as original:
                shutil.copyfileobj(original, copy, 2**20)
        os.chmod(tmp, stat.S_IMODE(info.st_mode))
        os.utime(tmp, ns=(info.st_atime_ns, info.st_mtime_ns))
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _chown_tree(root: Path, uid: int, gid: int, unshare: bool = True) -> None:
    """lchown root and everything under it to uid:gid.

    Never follows a symlink (the link itself changes owner, its target never does). With
    ``unshare``, never hands over an inode shared with anything else: a regular file with
    more than one link (a hardlink into a source cache, another run, a host file) is copied
    first. Handing the tree back needs no copies: the container could only link inside one
    bind mount (link() across mounts fails with EXDEV), so no link leads out of the run.
    """
    os.lchown(root, uid, gid)
    for dirpath, dirnames, filenames in os.walk(root):  # followlinks=False
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            # suppress: a file removed while we walk is no longer ours to chown.
            with contextlib.suppress(FileNotFoundError):
                info = os.lstat(path)
                if unshare and stat.S_ISREG(info.st_mode) and info.st_nlink > 1:
                    _unshare(path, info)
                os.lchown(path, uid, gid)


def _release(secret_dir: Path | None, dirs: RunDirs, restore: tuple[int, int] | None) -> None:
    """Undo what open() set up around the container (by close(), or by a failed open()).

    Deletes the private credentials copy; when the run dirs were lent to the container user,
    hands them (and what that user wrote in them) back to the host user.
    """
    if secret_dir is not None:
        shutil.rmtree(secret_dir, ignore_errors=True)
    if restore is not None:
        for path in dirs.all():
            if path.exists():
                _chown_tree(path, *restore, unshare=False)


# ---------------------------------------------------------------- the sandbox


class DockerSandbox:
    """One open container for one run."""

    def __init__(
        self,
        stream_client: docker.APIClient,
        container: Container,
        dirs: RunDirs,
        user: str,
        restore_owner: tuple[int, int] | None,
        secret_dir: Path | None,
        settings: DockerSettings | None = None,
    ) -> None:
        self.paths = SandboxPaths(workspace=WORKSPACE, home=HOME, inputs=INPUTS)
        self._stream = stream_client
        self._container = container
        self._dirs = dirs
        self._user = user
        self._restore_owner = restore_owner
        self._secret_dir = secret_dir
        self._settings = settings or DockerSettings()
        self._broken: str | None = None
        self._closed = False

    @property
    def container_id(self) -> str:
        return str(self._container.id)

    def run(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str],
        timeout_s: float,
        stdout_path: Path,
        stderr_path: Path,
        cwd: str | None = None,
        redactor: Redactor | None = None,
        stop_when: StopWhen | None = None,
    ) -> ProcessOutcome:
        if self._closed:
            raise SandboxError("run() on a closed docker sandbox")
        if self._broken is not None:
            raise SandboxError(self._broken)
        if not argv:
            raise SandboxError("run() needs a command")
        bad = [name for name in env if not _ENV_NAME.match(name)]
        if bad:
            raise SandboxError(f"environment names not usable in a container: {bad}")
        try:
            # The entrypoint's exec mode drops every variable not named here, so the image's
            # and docker's own (HOSTNAME, PATH...) do not leak into the run.
            cmd = [ENTRYPOINT, "exec", ",".join(env), "--", *argv]
            exec_id = self._stream.exec_create(
                self.container_id,
                cmd,
                environment=dict(env),
                workdir=cwd or WORKSPACE,
                user=self._user,
            )["Id"]
        except docker.errors.DockerException as exc:
            raise SandboxError(f"docker exec in {self.container_id[:12]} failed: {exc}") from exc

        started = time.monotonic()
        wake = threading.Event()
        pump = _OutputPump(
            self._stream, exec_id, stdout_path, stderr_path, redactor, stop_when, wake
        )
        guard = DiskGuard(
            [self._dirs.workspace, self._dirs.home],
            self._settings.disk_bytes,
            on_exceeded=wake.set,
            every_s=self._settings.disk_check_every_s,
        )
        try:
            with guard:
                pump.start()
                why = _wait(pump, guard, wake, started + timeout_s)
        except BaseException:
            # Ctrl-C (or anything else) while the process runs: nothing may outlive us.
            self.close()
            pump.wait(1.0)  # lets the pump write its last, redacted, bytes
            raise
        if why is not None or pump.error is not None:
            self._kill_all()
            if not pump.wait(_KILL_GRACE_S):
                self._hard_kill()
        if pump.error is not None and why is None:
            raise SandboxError(f"reading the output of docker exec failed: {pump.error}")
        duration = time.monotonic() - started
        if why is not None:
            return ProcessOutcome(
                None,
                timed_out=why == "timeout",
                duration_s=duration,
                stopped_after_last_word=why == "last_word",
                disk_limit_exceeded=why == "disk",
            )
        return ProcessOutcome(self._exit_code(exec_id), False, duration)

    def _exit_code(self, exec_id: str) -> int | None:
        # The stream can end a moment before docker records the exit.
        deadline = time.monotonic() + 2.0
        while True:
            try:
                state = self._stream.exec_inspect(exec_id)
            except docker.errors.DockerException as exc:
                raise SandboxError(f"docker exec inspect failed: {exc}") from exc
            if not state.get("Running") or time.monotonic() > deadline:
                return state.get("ExitCode")
            time.sleep(0.02)

    def _kill_all(self) -> None:
        """Kill every process of the run, whatever session or group it moved to.

        PID 1 of the container does it on SIGUSR1 (kill(-1) spares only the namespace's
        init), so the container stays up for the next process.
        """
        try:
            self._container.kill(signal="SIGUSR1")
        except docker.errors.DockerException:
            self._hard_kill()

    def _hard_kill(self) -> None:
        """Last resort: kill the container itself (it is auto-removed; the sandbox is spent)."""
        self._broken = f"container {self.container_id[:12]} was killed: the sandbox is spent"
        try:
            self._container.kill()
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError as exc:
            if "is not running" not in str(exc):
                raise SandboxError(
                    f"could not kill container {self.container_id[:12]}: {exc}"
                ) from exc

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self._container.remove(force=True)
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError as exc:
            # auto_remove may already be removing it (it ended itself): that is the goal.
            if "already in progress" not in str(exc):
                raise SandboxError(
                    f"could not remove container {self.container_id[:12]}: {exc}"
                ) from exc
        except docker.errors.DockerException as exc:
            raise SandboxError(
                f"could not remove container {self.container_id[:12]}: {exc}"
            ) from exc
        finally:
            _release(self._secret_dir, self._dirs, self._restore_owner)


def _wait(
    pump: _OutputPump, guard: DiskGuard, wake: threading.Event, deadline: float
) -> Literal["timeout", "last_word", "disk"] | None:
    """Until the process ends (None) or why it must be killed."""
    last_word_at: float | None = None
    while not pump.finished:
        now = time.monotonic()
        if guard.exceeded:
            return "disk"
        until = deadline
        if pump.last_word:
            last_word_at = now if last_word_at is None else last_word_at
            if now - last_word_at >= LAST_WORD_GRACE_S:
                return "last_word"
            until = min(deadline, last_word_at + LAST_WORD_GRACE_S)
        if now >= deadline:
            return "timeout"
        wake.wait(until - now)
        wake.clear()  # the loop re-reads every flag after this, so no wake-up is lost
    return None


class _PlainSink:
    """The StreamRedactor interface without redaction, for callers with no secrets."""

    def __init__(self, handle: BinaryIO) -> None:
        self.handle = handle

    def write(self, chunk: bytes) -> None:
        self.handle.write(chunk)
        self.handle.flush()  # per chunk, so a live `tail -f` of the run's logs works

    def close(self) -> None:
        self.handle.flush()


class _OutputPump:
    """Starts the exec and copies its demultiplexed output into the two host files.

    Output goes through a ``StreamRedactor`` when there is a redactor, so no raw secret is
    ever on disk; complete stdout lines go to ``stop_when``. ``wake`` is set when the
    stream ends or the process said its last word.
    """

    def __init__(
        self,
        api: docker.APIClient,
        exec_id: str,
        stdout_path: Path,
        stderr_path: Path,
        redactor: Redactor | None,
        stop_when: StopWhen | None,
        wake: threading.Event,
    ) -> None:
        self._api = api
        self._exec_id = exec_id
        self._paths = (stdout_path, stderr_path)
        self._redactor = redactor
        self._stop_when = stop_when
        self._wake = wake
        self._line = b""
        self._thread = threading.Thread(target=self._pump, name="scylla-docker-exec", daemon=True)
        self.error: BaseException | None = None
        self.last_word = False
        self.finished = False

    def start(self) -> None:
        self._thread.start()

    def wait(self, timeout_s: float) -> bool:
        self._thread.join(max(timeout_s, 0.0))
        return not self._thread.is_alive()

    def _sink(self, handle: BinaryIO) -> StreamRedactor | _PlainSink:
        if self._redactor is None:
            return _PlainSink(handle)
        return StreamRedactor(self._redactor, handle)

    def _lines(self, chunk: bytes) -> None:
        if self._stop_when is None or self.last_word:
            return
        self._line += chunk
        while not self.last_word:
            cut = self._line.find(b"\n") + 1
            if not cut:
                break
            line, self._line = self._line[:cut], self._line[cut:]
            if self._stop_when(line):
                self.last_word = True
                self._wake.set()
        if len(self._line) > _STREAM_LINE_CAP:
            self._line = b""  # a line this long is no last word; do not hold it all

    def _pump(self) -> None:
        try:
            stdout_path, stderr_path = self._paths
            stdout_path.parent.mkdir(parents=True, exist_ok=True)
            stderr_path.parent.mkdir(parents=True, exist_ok=True)
            with open(stdout_path, "wb") as out_file, open(stderr_path, "wb") as err_file:
                out, err = self._sink(out_file), self._sink(err_file)
                try:
                    frames = self._api.exec_start(self._exec_id, stream=True, demux=True)
                    for chunk_out, chunk_err in frames:
                        if chunk_out:
                            out.write(chunk_out)
                            self._lines(chunk_out)
                        if chunk_err:
                            err.write(chunk_err)
                finally:
                    out.close()
                    err.close()
        except BaseException as exc:  # reported by run(), never lost in a thread
            self.error = exc
        finally:
            self.finished = True
            self._wake.set()


# ---------------------------------------------------------------- session lease


class _Lease:
    """The factory's host folder: a lease file renewed from a thread, credentials copies.

    Every container of the factory mounts the lease file read-only and ends itself once the
    file's mtime is older than ``lease_stale_s`` (image/scylla-init.py). The file is only
    ever touched, never replaced: a replaced file would no longer be the mounted inode.
    """

    def __init__(self, owner_start: str) -> None:
        self.dir = Path(
            tempfile.mkdtemp(prefix=f"{SESSION_DIR_PREFIX}{os.getpid()}-{owner_start}-")
        )
        os.chmod(self.dir, 0o711)  # containers' users reach their files, never list them
        self.file = self.dir / "lease"
        self.file.touch(mode=0o644)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._renew, name="scylla-docker-lease", daemon=True)
        self._thread.start()

    def _renew(self) -> None:
        while not self._stop.wait(LEASE_RENEW_S):
            with contextlib.suppress(OSError):
                os.utime(self.file)

    def end(self) -> None:
        self._stop.set()
        self._thread.join()
        shutil.rmtree(self.dir, ignore_errors=True)


def _sweep_session_dirs(root: Path) -> int:
    """Remove the host folders (lease, credentials copies) of factories whose process died."""
    removed = 0
    with contextlib.suppress(OSError):
        for entry in os.scandir(root):
            match = _SESSION_DIR.match(entry.name)
            if match is None or not entry.is_dir(follow_symlinks=False):
                continue
            if _pid_alive(int(match.group(1)), match.group(2)):
                continue
            shutil.rmtree(entry.path, ignore_errors=True)
            removed += 1
    return removed


class DockerSandboxFactory:
    """Opens docker sandboxes for one pytest session (one per xdist worker)."""

    name = "docker"

    def __init__(self, settings: DockerSettings | None = None, session_id: str | None = None):
        self.settings = settings or DockerSettings()
        self.session_id = session_id or uuid.uuid4().hex
        self._client: docker.DockerClient | None = None
        self._stream: docker.APIClient | None = None
        self._opened = 0
        self._owner_start = _process_start(os.getpid())
        self._live: weakref.WeakSet[DockerSandbox] = weakref.WeakSet()
        self._lease: _Lease | None = None
        self._lease_lock = threading.Lock()
        # None: not tried yet; False: the storage driver refused a "size" storage option.
        self._storage_size: bool | None = None
        # Last line of defence when the caller never closes (crash in a fixture, Ctrl-C
        # outside run()); after SIGKILL the containers end themselves (stale lease).
        atexit.register(self.close_all)

    # -- engine

    def _engine(self) -> tuple[docker.DockerClient, docker.APIClient]:
        if self._client is None or self._stream is None:
            url = _engine_url(self.settings)
            try:
                self._client = docker.DockerClient(base_url=url, timeout=120)
                # Exec output may stay silent for the whole run: this client must not time
                # out on reads (run() enforces its own timeout).
                self._stream = docker.APIClient(base_url=url, timeout=None)  # type: ignore[arg-type]
            except docker.errors.DockerException as exc:
                raise SandboxError(f"cannot reach the Docker engine at {url}: {exc}") from exc
        return self._client, self._stream

    def check_available(self) -> str | None:
        url = _engine_url(self.settings)
        try:
            client, _ = self._engine()
            client.ping()
        except (SandboxError, docker.errors.DockerException, OSError) as exc:
            if isinstance(exc.__cause__ or exc, PermissionError) or "ermission denied" in str(exc):
                return (
                    f"permission denied on the Docker engine at {url}: run as root or "
                    "add this user to the docker group"
                )
            return (
                f"no Docker engine answers at {url}: install docker.io and start dockerd "
                "(see .ci/start-dockerd.sh)"
            )
        if self.settings.network == "bridge":
            try:
                client.networks.get("bridge")
            except docker.errors.NotFound:
                return (
                    "docker has no default 'bridge' network (dockerd --bridge=none): "
                    "use --docker-network none or host"
                )
        return None

    def ensure_image(self, force: bool = False, progress: Progress | None = None) -> str:
        """Build scylla-base/scylla-runner when missing or stale; returns the image."""
        client, _ = self._engine()
        ensure_images(force=force, progress=progress or silent, client=client)
        return self.settings.image

    # -- containers

    def _run_user(self) -> tuple[int, int]:
        if os.geteuid() != 0:
            # Same uid as the host user: files written in the workspace stay theirs.
            return os.geteuid(), os.getegid()
        return IMAGE_UID, IMAGE_UID

    def _session_lease(self) -> _Lease:
        with self._lease_lock:
            if self._lease is None:
                self._lease = _Lease(self._owner_start)
            return self._lease

    def _credentials_mount(
        self, uid: int, gid: int, lease: _Lease
    ) -> tuple[dict[str, dict[str, str]], Path | None]:
        if not self.settings.mount_credentials:
            return {}, None
        # The login as the session redactor read it (no symlink followed, size capped).
        source = self.settings.credentials_file or login_file_path()
        login = read_login_file(source).login
        if login is None:
            return {}, None
        # A private copy readable by the container user (the original is usually 0600 and
        # owned by someone else); it lives outside the run dirs so no secret lands in the
        # results; close() deletes it, sweep_stale() does after a SIGKILL. Only the file is
        # mounted, never its folder.
        secret_dir = Path(tempfile.mkdtemp(prefix="cred-", dir=lease.dir))
        copy = secret_dir / "credentials.json"
        login.write_copy(copy)  # 0400
        if os.geteuid() == 0:
            os.chown(copy, uid, gid)
        os.chmod(secret_dir, 0o711)
        return {str(copy): {"bind": CREDENTIALS_TARGET, "mode": "ro"}}, secret_dir

    def open(self, dirs: RunDirs, labels: Mapping[str, str]) -> DockerSandbox:
        client, stream = self._engine()
        uid, gid = self._run_user()
        for path in dirs.all():
            path.mkdir(parents=True, exist_ok=True)
        # base_env points TMPDIR here; tools fail oddly when it does not exist.
        (dirs.home / "tmp").mkdir(exist_ok=True)
        # Pre-create ~/.claude so the credentials bind mount does not make it root-owned.
        (dirs.home / ".claude").mkdir(exist_ok=True)
        # Root host, non-root container user: lend the run dirs to the container user for
        # the run; close() hands them back to the host user.
        lend = os.geteuid() == 0 and uid != 0
        restore = (os.geteuid(), os.getegid()) if lend else None
        self._opened += 1
        name = f"scylla-{self.session_id[:12]}-{os.getpid()}-{self._opened}"
        secret_dir: Path | None = None
        lease = self._session_lease()
        try:
            if lend:
                for path in dirs.all():
                    _chown_tree(path, uid, gid)
            volumes: dict[str, dict[str, str]] = {
                str(dirs.workspace.resolve()): {"bind": WORKSPACE, "mode": "rw"},
                str(dirs.home.resolve()): {"bind": HOME, "mode": "rw"},
                str(dirs.inputs.resolve()): {"bind": INPUTS, "mode": "ro"},
                str(lease.file): {"bind": LEASE_TARGET, "mode": "ro"},
            }
            cred_volume, secret_dir = self._credentials_mount(uid, gid, lease)
            volumes.update(cred_volume)
            container = self._create(client, name, f"{uid}:{gid}", volumes, labels)
        except BaseException:
            # Ctrl-C between create and start, or a failed start: nothing may stay behind.
            self._remove_by_name(client, name)
            _release(secret_dir, dirs, restore)
            raise
        sandbox = DockerSandbox(
            stream, container, dirs, f"{uid}:{gid}", restore, secret_dir, self.settings
        )
        self._live.add(sandbox)
        return sandbox

    def close_all(self) -> None:
        """Close every sandbox this factory opened that is still open; end the lease."""
        for sandbox in list(self._live):
            with contextlib.suppress(SandboxError):
                sandbox.close()
        with self._lease_lock:
            if self._lease is not None:
                self._lease.end()
                self._lease = None

    def _create(
        self,
        client: docker.DockerClient,
        name: str,
        user: str,
        volumes: dict[str, dict[str, str]],
        labels: Mapping[str, str],
    ) -> Container:
        s = self.settings
        all_labels = {
            **{str(k): str(v) for k, v in labels.items()},
            LABEL_MANAGED: "1",
            LABEL_SESSION: labels.get(LABEL_SESSION, self.session_id),
            LABEL_OWNER_PID: str(os.getpid()),
            LABEL_OWNER_HOST: socket.gethostname(),
            LABEL_OWNER_START: self._owner_start,
        }
        tmpfs_size = parse_size(s.tmpfs_size)
        # exec: docker's tmpfs default is noexec, which breaks tools that run what they build.
        tmpfs = {path: f"size={tmpfs_size},mode=1777,exec" for path in _TMPFS}
        tmpfs["/run/lock"] = "size=1m,mode=1777"
        options = dict(
            command=["idle", f"{s.lease_stale_s:g}"],
            name=name,
            user=user,
            volumes=volumes,
            labels=all_labels,
            network_mode=s.network,
            mem_limit=s.memory,
            nano_cpus=int(s.cpus * 1e9),
            pids_limit=s.pids,
            cap_drop=["ALL"],
            security_opt=["no-new-privileges"],
            read_only=True,
            tmpfs=tmpfs,
            # Removed by docker once it ends, also when it ends itself (stale lease).
            auto_remove=True,
            working_dir=WORKSPACE,
            environment={},
            hostname="scylla",
        )
        try:
            # create + start, not containers.run(): run() would try to pull a missing image
            # from a registry, which must never happen here.
            container = self._create_sized(client, s, options)
            container.start()
        except docker.errors.ImageNotFound as exc:
            raise SandboxError(
                f"image {s.image} not found: build it with .ci/build-images.sh "
                "(or --scylla-build-image)"
            ) from exc
        except docker.errors.DockerException as exc:
            raise SandboxError(f"could not start a {s.image} container: {exc}") from exc
        return container

    def _create_sized(
        self, client: docker.DockerClient, s: DockerSettings, options: dict[str, Any]
    ) -> Container:
        """Create with a "size" storage option when the driver may honour it."""
        if self._storage_size is None:
            self._storage_size = _driver_may_size(client)
        if self._storage_size:
            try:
                return client.containers.create(s.image, storage_opt={"size": s.disk}, **options)
            except docker.errors.APIError as exc:
                if "storage" not in str(exc).lower() and "quota" not in str(exc).lower():
                    raise
                self._storage_size = False  # e.g. overlay2 on xfs without pquota
        return client.containers.create(s.image, **options)

    @staticmethod
    def _remove_by_name(client: docker.DockerClient, name: str) -> None:
        with contextlib.suppress(docker.errors.DockerException):
            client.containers.get(name).remove(force=True)

    def sweep_stale(self) -> int:
        """Remove scylla containers whose owning process (on this host) is gone, and the
        host folders (lease, credentials copies) such processes left; returns how many
        containers were removed."""
        client, _ = self._engine()
        _sweep_session_dirs(Path(tempfile.gettempdir()))
        here = socket.gethostname()
        removed = 0
        try:
            containers = client.containers.list(all=True, filters={"label": f"{LABEL_MANAGED}=1"})
        except docker.errors.DockerException as exc:
            raise SandboxError(f"cannot list containers: {exc}") from exc
        for container in containers:
            labels = container.labels
            if labels.get(LABEL_SESSION) == self.session_id:
                continue
            if labels.get(LABEL_OWNER_HOST) != here:
                continue  # another machine's engine client: its pids mean nothing here
            try:
                pid = int(labels.get(LABEL_OWNER_PID, ""))
            except ValueError:
                continue
            if _pid_alive(pid, labels.get(LABEL_OWNER_START, "")):
                continue
            try:
                container.remove(force=True)
                removed += 1
            except docker.errors.NotFound:
                pass
            except docker.errors.DockerException as exc:
                raise SandboxError(
                    f"cannot remove stale container {container.name}: {exc}"
                ) from exc
        return removed


def _driver_may_size(client: docker.DockerClient) -> bool:
    """Whether the storage driver may bound a container's writable layer ("size")."""
    try:
        info = client.info()
    except docker.errors.DockerException:
        return False
    driver = str(info.get("Driver", ""))
    status = dict(tuple(pair) for pair in info.get("DriverStatus") or [] if len(pair) == 2)
    if driver == "overlay2":
        return status.get("Backing Filesystem") == "xfs"
    return driver in _SIZED_DRIVERS
