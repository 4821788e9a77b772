"""Docker sandbox costs: per-run container overhead and image build times.

    python benchmarks/bench_docker.py [--n 10] [--cold]   (package installed, or PYTHONPATH=.)

Overhead: open + run `true` + close of a docker sandbox versus a plain local subprocess,
median of N; and versus a bare container (create, start, exec `true`, remove: no limits,
mounts, lease, read-only root or disk guard), which tells the sandbox's own cost apart from
the engine's (the engine's part grows with the machine's load). Builds: the CLI's share of
the image fingerprint (from the wheel's RECORD, or by reading the binary), ensure_images()
when cached, and with --cold a forced rebuild of
both images (what a machine without images pays; about a minute). Target: overhead at
most 1.5 s per run. Disk guard: one walk of a generated tree of 20k files (what a run pays
every few seconds while its process runs).
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pytest_scylla.sandbox.base import RunDirs
from pytest_scylla.sandbox.disk_guard import disk_usage
from pytest_scylla.sandbox.docker import DockerSandboxFactory, DockerSettings
from pytest_scylla.sandbox.docker_image import claude_binary, claude_digest, ensure_images

TARGET_OVERHEAD_S = 1.5


def _median_s(samples: list[float]) -> str:
    return f"{statistics.median(samples):.3f}s (min {min(samples):.3f}, max {max(samples):.3f})"


def bench_docker_run(n: int) -> list[float]:
    factory = DockerSandboxFactory(DockerSettings(network="none"))
    samples = []
    with tempfile.TemporaryDirectory(prefix="scylla-bench-") as tmp:
        for i in range(n):
            root = Path(tmp) / str(i)
            dirs = RunDirs(root / "ws", root / "home", root / "in")
            started = time.monotonic()
            box = factory.open(dirs, {"scylla.run": f"bench::{i}"})
            try:
                box.run(
                    ["true"],
                    env={"PATH": "/usr/bin:/bin"},
                    timeout_s=30,
                    stdout_path=root / "out",
                    stderr_path=root / "err",
                )
            finally:
                box.close()
            samples.append(time.monotonic() - started)
    return samples


def bench_bare_container(n: int) -> list[float]:
    """What the engine alone costs per run: the floor under any docker sandbox."""
    import docker

    client = docker.from_env()
    samples = []
    for _ in range(n):
        started = time.monotonic()
        container = client.containers.create(
            DockerSettings().image, command=["idle"], network_mode="none"
        )
        try:
            container.start()
            container.exec_run(["true"])
        finally:
            container.remove(force=True)
        samples.append(time.monotonic() - started)
    return samples


def bench_disk_walk(files: int = 20_000) -> tuple[float, int]:
    """Seconds of one disk_usage walk over a tree of that many small files, and entries."""
    with tempfile.TemporaryDirectory(prefix="scylla-bench-walk-") as tmp:
        root = Path(tmp)
        for i in range(files):
            folder = root / f"d{i // 500}"
            folder.mkdir(exist_ok=True)
            (folder / f"f{i}").write_bytes(b"x" * 100)
        disk_usage([root])  # warm the dentry cache, as repeated walks find it
        started = time.monotonic()
        usage = disk_usage([root])
        return time.monotonic() - started, usage.entries


def bench_local_run(n: int) -> list[float]:
    samples = []
    for _ in range(n):
        started = time.monotonic()
        subprocess.run(["true"], env={"PATH": "/usr/bin:/bin"}, check=True)
        samples.append(time.monotonic() - started)
    return samples


def bench_cli_digest() -> tuple[float, float]:
    """The runner fingerprint's CLI part: from the wheel's RECORD (every session) and by
    reading the ~400 MB binary (what it costs when no RECORD lists the file)."""
    binary = claude_binary()
    started = time.monotonic()
    recorded = claude_digest(binary)
    record_s = time.monotonic() - started
    started = time.monotonic()
    content = hashlib.sha256()
    with binary.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            content.update(chunk)
    read_s = time.monotonic() - started
    assert content.hexdigest() == recorded, "RECORD and content disagree"
    return record_s, read_s


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10)
    parser.add_argument("--cold", action="store_true", help="also time a forced full rebuild")
    args = parser.parse_args()

    reason = DockerSandboxFactory(DockerSettings(network="none")).check_available()
    if reason:
        print(f"skipped: {reason}")
        return 1

    if args.cold:
        report = ensure_images(force=True)
        print(
            f"build cold (forced): base {report.base_s:.1f}s + runner {report.runner_s:.1f}s"
            f" = {report.base_s + report.runner_s:.1f}s"
        )
    record_s, read_s = bench_cli_digest()
    print(f"CLI digest: from RECORD {record_s * 1000:.1f} ms, by reading it {read_s:.2f}s")
    started = time.monotonic()
    report = ensure_images(force=False)
    print(
        f"build cached: {time.monotonic() - started:.2f}s (rebuilt nothing: "
        f"{not (report.base_built or report.runner_built)})"
    )

    bench_docker_run(1)  # warm-up: first container pays for page cache and layer setup
    docker_s = bench_docker_run(args.n)
    bare_s = bench_bare_container(args.n)
    local_s = bench_local_run(args.n)
    overhead = statistics.median(docker_s) - statistics.median(local_s)
    print(f"docker open+run(true)+close, N={args.n}: median {_median_s(docker_s)}")
    print(f"bare container+exec+remove, N={args.n}: median {_median_s(bare_s)}")
    print(f"local subprocess(true),     N={args.n}: median {_median_s(local_s)}")
    own = statistics.median(docker_s) - statistics.median(bare_s)
    print(f"sandbox's own cost over a bare container: {own:.3f}s")
    walk_s, entries = bench_disk_walk()
    print(
        f"disk guard walk: {entries} entries in {walk_s:.3f}s ({walk_s / entries * 1e6:.1f} us each)"
    )
    verdict = "ok" if overhead <= TARGET_OVERHEAD_S else "OVER TARGET"
    print(f"overhead per run: {overhead:.3f}s (target <= {TARGET_OVERHEAD_S}s: {verdict})")
    return 0 if overhead <= TARGET_OVERHEAD_S else 2


if __name__ == "__main__":
    sys.exit(main())
