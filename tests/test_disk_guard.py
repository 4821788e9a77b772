"""sandbox/disk_guard.py: sizes, the bounded lstat walk and the watching thread."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from pytest_scylla.sandbox import disk_guard
from pytest_scylla.sandbox.disk_guard import DiskGuard, disk_usage, parse_size


@pytest.mark.parametrize(
    ("text", "size"),
    [("10g", 10 * 2**30), ("512m", 512 * 2**20), ("5MiB", 5 * 2**20), ("1.5k", 1536), ("42", 42)],
)
def test_parse_size(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "ten", "10x", "-1g"])
def test_parse_size_refuses_what_is_no_size(text: str) -> None:
    with pytest.raises(ValueError, match="not a size"):
        parse_size(text)


def _write(path: Path, size: int) -> None:
    path.write_bytes(os.urandom(size))


def test_usage_counts_each_inode_once_and_follows_no_symlink(tmp_path: Path) -> None:
    run, outside = tmp_path / "run", tmp_path / "outside"
    run.mkdir()
    outside.mkdir()
    _write(outside / "big", 4 * 2**20)
    _write(run / "a", 2**20)
    os.link(run / "a", run / "a-again")
    (run / "to-big").symlink_to(outside / "big")
    (run / "to-outside").symlink_to(outside, target_is_directory=True)
    usage = disk_usage([run])
    assert 2**20 <= usage.bytes < 2**20 + 64 * 1024
    assert (usage.entries, usage.truncated) == (4, False)


def test_usage_counts_allocated_blocks_not_apparent_size(tmp_path: Path) -> None:
    with open(tmp_path / "sparse", "wb") as handle:
        handle.truncate(2**40)  # a terabyte that occupies nothing
    assert disk_usage([tmp_path]).bytes < 2**20


def test_usage_walk_is_bounded(tmp_path: Path) -> None:
    for i in range(50):
        (tmp_path / str(i)).touch()
    usage = disk_usage([tmp_path], max_entries=10)
    assert usage.truncated and usage.entries == 11
    assert disk_usage([tmp_path / "missing"]).bytes == 0


def test_guard_calls_back_once_past_the_limit(tmp_path: Path) -> None:
    exceeded = threading.Event()
    with DiskGuard([tmp_path], 2**20, on_exceeded=exceeded.set, every_s=0.05) as guard:
        assert not exceeded.wait(0.3)
        assert not guard.exceeded
        _write(tmp_path / "f", 2 * 2**20)
        assert exceeded.wait(5)
    assert guard.exceeded
    assert "disk limit exceeded" in guard.describe()


def test_guard_counts_too_many_files_as_exceeded(tmp_path: Path) -> None:
    for i in range(20):
        (tmp_path / str(i)).touch()
    exceeded = threading.Event()
    with DiskGuard(
        [tmp_path], 2**30, on_exceeded=exceeded.set, every_s=0.05, max_entries=10
    ) as guard:
        assert exceeded.wait(5)
    assert guard.last is not None and guard.last.truncated


def test_a_set_stop_ends_the_walk_early(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(disk_guard, "STOP_CHECK_EVERY", 8)
    for i in range(50):
        (tmp_path / str(i)).touch()
    stop = threading.Event()
    stop.set()
    assert disk_usage([tmp_path], stop=stop).entries == 8
    assert disk_usage([tmp_path]).entries == 50
