"""SharedBackoff: bounded retries, retry-after honoured, one wait shared across processes."""

from __future__ import annotations

import multiprocessing
import time
from pathlib import Path

import pytest

from pytest_scylla.judges.backoff import (
    BackoffExhausted,
    BackoffState,
    RetryDecision,
    SharedBackoff,
)


class Flaky(Exception):
    def __init__(self, retry_after: float | None = None, shared: bool = False) -> None:
        super().__init__("flaky")
        self.retry_after = retry_after
        self.shared = shared


class Fatal(Exception):
    pass


def classify(error: BaseException) -> RetryDecision:
    if isinstance(error, Flaky):
        return RetryDecision(
            retry=True, retry_after_s=error.retry_after, shared=error.shared, message="flaky"
        )
    return RetryDecision(retry=False)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def make(tmp_path: Path, clock: FakeClock, **kwargs: float) -> SharedBackoff:
    options = {"max_attempts": 4, "max_total_s": 100.0, "base_s": 1.0, "cap_s": 8.0}
    options.update(kwargs)
    return SharedBackoff(
        tmp_path / "backoff.json",
        seed=1,
        clock=clock,
        sleep=clock.sleep,
        **options,  # type: ignore[arg-type]
    )


def test_success_after_retries(tmp_path: Path) -> None:
    clock = FakeClock()
    backoff = make(tmp_path, clock)
    calls: list[float] = []

    def request() -> str:
        calls.append(clock.now)
        if len(calls) < 3:
            raise Flaky()
        return "ok"

    assert backoff.run(request, classify) == "ok"
    assert len(calls) == 3
    # Full jitter within [ceiling/2, ceiling] for ceilings 1 and 2.
    assert 0.5 <= calls[1] - calls[0] <= 1.0
    assert 1.0 <= calls[2] - calls[1] <= 2.0


def test_retry_after_is_a_floor(tmp_path: Path) -> None:
    clock = FakeClock()
    backoff = make(tmp_path, clock)
    calls: list[float] = []

    def request() -> str:
        calls.append(clock.now)
        if len(calls) == 1:
            raise Flaky(retry_after=5.0, shared=True)
        return "ok"

    backoff.run(request, classify)
    assert calls[1] - calls[0] >= 5.0
    assert backoff.read_state().not_before >= calls[0] + 5.0


def test_attempts_are_bounded(tmp_path: Path) -> None:
    clock = FakeClock()
    backoff = make(tmp_path, clock, max_attempts=3)
    calls = 0

    def request() -> str:
        nonlocal calls
        calls += 1
        raise Flaky()

    with pytest.raises(BackoffExhausted, match="API unavailable after 3 attempts") as info:
        backoff.run(request, classify)
    assert calls == 3
    assert info.value.attempts == 3


def test_total_time_is_bounded(tmp_path: Path) -> None:
    clock = FakeClock()
    backoff = make(tmp_path, clock, max_attempts=50, max_total_s=10.0)
    calls = 0

    def request() -> str:
        nonlocal calls
        calls += 1
        raise Flaky(retry_after=4.0)

    with pytest.raises(BackoffExhausted):
        backoff.run(request, classify)
    assert calls == 3  # at 0, 4, 8: the next wait would end after 10 s
    assert clock.now - 1000.0 <= 10.0


def test_non_retryable_error_escapes_at_once(tmp_path: Path) -> None:
    clock = FakeClock()
    backoff = make(tmp_path, clock)
    calls = 0

    def request() -> str:
        nonlocal calls
        calls += 1
        raise Fatal()

    with pytest.raises(Fatal):
        backoff.run(request, classify)
    assert calls == 1 and clock.sleeps == []


def test_waits_for_a_not_before_set_by_someone_else(tmp_path: Path) -> None:
    clock = FakeClock()
    backoff = make(tmp_path, clock)
    backoff.push(7.0)
    sent: list[float] = []
    backoff.run(lambda: sent.append(clock.now), classify)
    assert sent == [pytest.approx(1007.0)]


def test_shared_wait_beyond_budget_fails_without_sending(tmp_path: Path) -> None:
    clock = FakeClock()
    backoff = make(tmp_path, clock, max_total_s=5.0)
    backoff.push(60.0)
    sent: list[float] = []
    with pytest.raises(BackoffExhausted, match="after 0 attempts"):
        backoff.run(lambda: sent.append(clock.now), classify)
    assert sent == []


def test_push_never_moves_backwards(tmp_path: Path) -> None:
    clock = FakeClock()
    backoff = make(tmp_path, clock)
    later = backoff.push(30.0)
    assert backoff.push(2.0) == later


def test_damaged_state_file_does_not_block(tmp_path: Path) -> None:
    clock = FakeClock()
    backoff = make(tmp_path, clock)
    backoff.state_file.write_text("{not json", encoding="utf-8")
    assert backoff.read_state() == BackoffState()
    assert backoff.run(lambda: "ok", classify) == "ok"


# --- two real processes sharing one state file


def _first_worker(state_file: str, failed_at, retried_at, failed) -> None:  # type: ignore[no-untyped-def]
    backoff = SharedBackoff(Path(state_file), max_attempts=3, max_total_s=30, base_s=0.05)
    calls = 0

    def request() -> str:
        nonlocal calls
        calls += 1
        if calls == 1:
            failed_at.value = time.time()
            raise Flaky(retry_after=1.5, shared=True)
        retried_at.value = time.time()
        return "ok"

    original_push = backoff.push

    def push_then_signal(delay_s: float, reason: str = "") -> float:
        value = original_push(delay_s, reason)
        failed.set()  # the other worker starts only once the wait is on disk
        return value

    backoff.push = push_then_signal  # type: ignore[method-assign]
    backoff.run(request, classify)


def _second_worker(state_file: str, sent_at, failed) -> None:  # type: ignore[no-untyped-def]
    failed.wait(10)
    backoff = SharedBackoff(Path(state_file), max_attempts=3, max_total_s=30, base_s=0.05)
    backoff.run(lambda: setattr(sent_at, "value", time.time()), classify)


@pytest.mark.slow
def test_second_process_waits_for_first_ones_retry_after(tmp_path: Path) -> None:
    context = multiprocessing.get_context("fork")
    failed_at = context.Value("d", 0.0)
    retried_at = context.Value("d", 0.0)
    sent_at = context.Value("d", 0.0)
    failed = context.Event()
    state_file = str(tmp_path / "backoff.json")
    first = context.Process(target=_first_worker, args=(state_file, failed_at, retried_at, failed))
    second = context.Process(target=_second_worker, args=(state_file, sent_at, failed))
    first.start()
    second.start()
    first.join(20)
    second.join(20)
    assert first.exitcode == 0 and second.exitcode == 0
    assert failed_at.value > 0 and sent_at.value > 0
    # Neither process sent again before the first one's retry-after had elapsed.
    assert sent_at.value >= failed_at.value + 1.5
    assert retried_at.value >= failed_at.value + 1.5
