"""The docker sandbox: one long-lived ``scylla-runner`` container per run.

``open()`` creates and starts the container (its main process idles); every ``run()`` is a
``docker exec`` in it; ``close()`` removes it with force. Only the three run directories
are mounted (plus, on request, the host's Claude credentials file, read-only); API keys
arrive only through the ``env`` of ``run()``. Everything goes through the Docker SDK,
never the docker CLI.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import re
import shutil
import socket
import tempfile
import threading
import time
import uuid
import weakref
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import BinaryIO, Literal

import docker.errors
from docker.models.containers import Container
from pydantic import BaseModel, ConfigDict, Field

import docker
from pytest_scylla.sandbox.base import ProcessOutcome, RunDirs, SandboxError, SandboxPaths
from pytest_scylla.sandbox.docker_image import RUNNER_IMAGE, Progress, ensure_images, silent
from pytest_scylla.sandbox.local import proc_stat_fields

WORKSPACE = "/workspace"
HOME = "/home/scylla"
INPUTS = "/scylla/inputs"
CREDENTIALS_TARGET = f"{HOME}/.claude/.credentials.json"
ENTRYPOINT = "/usr/local/bin/scylla-entrypoint"
IMAGE_UID = 1000  # the scylla user baked into docker/Dockerfile

LABEL_MANAGED = "scylla.managed"
LABEL_SESSION = "scylla.session"
LABEL_RUN = "scylla.run"
LABEL_OWNER_PID = "scylla.owner.pid"
LABEL_OWNER_HOST = "scylla.owner.host"
LABEL_OWNER_START = "scylla.owner.start"

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_KILL_GRACE_S = 10.0  # how long to wait for the exec stream to end after a kill


class DockerSettings(BaseModel):
    """How docker sandboxes are created (from the plugin's --scylla-docker-* options)."""

    model_config = ConfigDict(extra="forbid")

    image: str = RUNNER_IMAGE
    # "bridge" is docker's own default network; this project never creates one.
    network: Literal["none", "host", "bridge"] = "bridge"
    memory: str = "4g"
    cpus: float = Field(default=2.0, gt=0)
    pids: int = Field(default=512, gt=0)
    mount_credentials: bool = False
    # None: ~/.claude/.credentials.json of the host user, when it exists.
    credentials_file: Path | None = None
    # None: DOCKER_HOST from the environment, else the default unix socket.
    docker_host: str | None = None


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


def _chown_tree(root: Path, uid: int, gid: int) -> None:
    os.lchown(root, uid, gid)
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            # suppress: a file removed while we walk is no longer ours to chown.
            with contextlib.suppress(FileNotFoundError):
                os.lchown(os.path.join(dirpath, name), uid, gid)


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
                _chown_tree(path, *restore)


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
    ) -> None:
        self.paths = SandboxPaths(workspace=WORKSPACE, home=HOME, inputs=INPUTS)
        self._stream = stream_client
        self._container = container
        self._dirs = dirs
        self._user = user
        self._restore_owner = restore_owner
        self._secret_dir = secret_dir
        self._needs_restart = False
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
    ) -> ProcessOutcome:
        if self._closed:
            raise SandboxError("run() on a closed docker sandbox")
        if not argv:
            raise SandboxError("run() needs a command")
        bad = [name for name in env if not _ENV_NAME.match(name)]
        if bad:
            raise SandboxError(f"environment names not usable in a container: {bad}")
        try:
            if self._needs_restart:
                # A timeout killed every process, the idle main process included.
                self._container.start()
                self._needs_restart = False
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
        pump = _OutputPump(self._stream, exec_id, stdout_path, stderr_path)
        try:
            pump.start()
            finished = pump.wait(timeout_s)
        except BaseException:
            # Ctrl-C (or anything else) while the process runs: nothing may outlive us.
            self.close()
            raise
        if not finished:
            self._kill_all()
            pump.wait(_KILL_GRACE_S)
            return ProcessOutcome(None, True, time.monotonic() - started)
        if pump.error is not None:
            raise SandboxError(f"reading the output of docker exec failed: {pump.error}")
        try:
            exit_code = self._stream.exec_inspect(exec_id)["ExitCode"]
        except docker.errors.DockerException as exc:
            raise SandboxError(f"docker exec inspect failed: {exc}") from exc
        return ProcessOutcome(exit_code, False, time.monotonic() - started)

    def _kill_all(self) -> None:
        """Kill the whole process tree of the timed-out exec.

        Killing the container is the only way that also catches descendants that left the
        process group or daemonized; the container is started again before the next run.
        """
        self._needs_restart = True
        try:
            self._container.kill()
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
        except docker.errors.DockerException as exc:
            raise SandboxError(
                f"could not remove container {self.container_id[:12]}: {exc}"
            ) from exc
        finally:
            _release(self._secret_dir, self._dirs, self._restore_owner)


class _OutputPump:
    """Starts the exec and copies its demultiplexed output into the two host files."""

    def __init__(
        self, api: docker.APIClient, exec_id: str, stdout_path: Path, stderr_path: Path
    ) -> None:
        self._api = api
        self._exec_id = exec_id
        self._paths = (stdout_path, stderr_path)
        self._thread = threading.Thread(target=self._pump, name="scylla-docker-exec", daemon=True)
        self.error: BaseException | None = None

    def start(self) -> None:
        self._thread.start()

    def wait(self, timeout_s: float) -> bool:
        self._thread.join(max(timeout_s, 0.0))
        return not self._thread.is_alive()

    def _pump(self) -> None:
        try:
            with open(self._paths[0], "wb") as out, open(self._paths[1], "wb") as err:
                frames = self._api.exec_start(self._exec_id, stream=True, demux=True)
                for chunk_out, chunk_err in frames:
                    # Flushed per chunk so a live `tail -f` of the run's logs works.
                    _write(out, chunk_out)
                    _write(err, chunk_err)
        except BaseException as exc:  # reported by run(), never lost in a thread
            self.error = exc


def _write(handle: BinaryIO, chunk: bytes | None) -> None:
    if chunk:
        handle.write(chunk)
        handle.flush()


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
        # Last line of defence when the caller never closes (crash in a fixture, Ctrl-C
        # outside run()); SIGKILL of the whole process is left to sweep_stale().
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
                    "use --scylla-docker-network none or host"
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

    def _credentials_mount(
        self, uid: int, gid: int
    ) -> tuple[dict[str, dict[str, str]], Path | None]:
        if not self.settings.mount_credentials:
            return {}, None
        source = self.settings.credentials_file or Path.home() / ".claude" / ".credentials.json"
        if not source.is_file():
            return {}, None
        # A private copy readable by the container user (the original is usually 0600 and
        # owned by someone else); it lives outside the run dirs so no secret lands in the
        # results, and close() deletes it.
        secret_dir = Path(tempfile.mkdtemp(prefix="scylla-cred-"))
        copy = secret_dir / "credentials.json"
        shutil.copyfile(source, copy)
        if os.geteuid() == 0:
            os.chown(copy, uid, gid)
        os.chmod(copy, 0o400)
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
        try:
            if lend:
                for path in dirs.all():
                    _chown_tree(path, uid, gid)
            volumes: dict[str, dict[str, str]] = {
                str(dirs.workspace.resolve()): {"bind": WORKSPACE, "mode": "rw"},
                str(dirs.home.resolve()): {"bind": HOME, "mode": "rw"},
                str(dirs.inputs.resolve()): {"bind": INPUTS, "mode": "ro"},
            }
            cred_volume, secret_dir = self._credentials_mount(uid, gid)
            volumes.update(cred_volume)
            container = self._create(client, name, f"{uid}:{gid}", volumes, labels)
        except BaseException:
            # Ctrl-C between create and start, or a failed start: nothing may stay behind.
            self._remove_by_name(client, name)
            _release(secret_dir, dirs, restore)
            raise
        sandbox = DockerSandbox(stream, container, dirs, f"{uid}:{gid}", restore, secret_dir)
        self._live.add(sandbox)
        return sandbox

    def close_all(self) -> None:
        """Close every sandbox this factory opened that is still open."""
        for sandbox in list(self._live):
            with contextlib.suppress(SandboxError):
                sandbox.close()

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
        try:
            # create + start, not containers.run(): run() would try to pull a missing image
            # from a registry, which must never happen here.
            container = client.containers.create(
                s.image,
                command=["idle"],
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
                working_dir=WORKSPACE,
                environment={},
                hostname="scylla",
            )
            container.start()
        except docker.errors.ImageNotFound as exc:
            raise SandboxError(
                f"image {s.image} not found: build it with .ci/build-images.sh "
                "(or --scylla-build-image)"
            ) from exc
        except docker.errors.DockerException as exc:
            raise SandboxError(f"could not start a {s.image} container: {exc}") from exc
        return container

    @staticmethod
    def _remove_by_name(client: docker.DockerClient, name: str) -> None:
        with contextlib.suppress(docker.errors.DockerException):
            client.containers.get(name).remove(force=True)

    def sweep_stale(self) -> int:
        """Remove scylla containers whose owning process (on this host) is gone."""
        client, _ = self._engine()
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
