"""Retries for API calls, with one "not before" time shared by every process of a session.

When the API says 429 (rate limit) or 529 (overloaded), every xdist worker is hitting the
same account: if only the worker that got the error waited, the others would keep the
limit tripped. So the wait is written to a small JSON state file (guarded by a FileLock)
and every worker waits for it before each request.

Delays: exponential with full jitter (base * 2**n, capped), never shorter than the server's
`retry-after`. The number of attempts and the total time are both bounded; when either runs
out the caller gets `BackoffExhausted` and turns it into a failed judge, never a hang.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from filelock import FileLock
from pydantic import BaseModel, ValidationError

from pytest_scylla.records import atomic_write_text

T = TypeVar("T")


class BackoffState(BaseModel):
    """The state file: no request from any process before `not_before` (epoch seconds)."""

    not_before: float = 0.0
    reason: str = ""


class RetryDecision(BaseModel):
    """How the caller's classifier sees an exception."""

    retry: bool
    retry_after_s: float | None = None  # the server's retry-after, when it sent one
    shared: bool = False  # a rate-limit signal: every process should slow down
    message: str = ""


class BackoffExhausted(Exception):
    def __init__(self, attempts: int, last_error: BaseException, message: str) -> None:
        super().__init__(message)
        self.attempts = attempts
        self.last_error = last_error


class SharedBackoff:
    def __init__(
        self,
        state_file: Path,
        *,
        max_attempts: int = 6,
        max_total_s: float = 300.0,
        base_s: float = 1.0,
        cap_s: float = 60.0,
        seed: int | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self.state_file = state_file
        self.max_attempts = max_attempts
        self.max_total_s = max_total_s
        self.base_s = base_s
        self.cap_s = cap_s
        self._rng = random.Random(seed)
        self._clock = clock
        self._sleep = sleep
        self._lock = FileLock(str(state_file) + ".lock")

    # --- the shared state

    def read_state(self) -> BackoffState:
        with self._lock:
            return self._read_unlocked()

    def _read_unlocked(self) -> BackoffState:
        try:
            return BackoffState.model_validate(json.loads(self.state_file.read_text("utf-8")))
        except (OSError, ValueError, ValidationError):
            # Missing or damaged: no one asked to wait (a damaged file must not block forever).
            return BackoffState()

    def push(self, delay_s: float, reason: str = "") -> float:
        """Move the shared not-before to at least now + delay_s; returns the new value."""
        with self._lock:
            state = self._read_unlocked()
            wanted = self._clock() + delay_s
            if wanted > state.not_before:
                state = BackoffState(not_before=wanted, reason=reason)
                atomic_write_text(self.state_file, state.model_dump_json() + "\n")
            return state.not_before

    def wait_turn(self, deadline: float | None = None) -> bool:
        """Sleep until the shared not-before has passed; False if it lies beyond `deadline`.

        Re-reads after each sleep: another process may have pushed it further meanwhile.
        """
        while True:
            not_before = self.read_state().not_before
            now = self._clock()
            if not_before <= now:
                return True
            if deadline is not None and not_before > deadline:
                return False
            self._sleep(min(not_before - now, 1.0))

    # --- delays and the retry loop

    def delay(self, retry_number: int, retry_after_s: float | None) -> float:
        """Full jitter over base * 2**n (capped), but at least the server's retry-after."""
        ceiling = min(self.cap_s, self.base_s * (2**retry_number))
        jittered = self._rng.uniform(ceiling / 2, ceiling)
        return max(jittered, retry_after_s or 0.0)

    def run(
        self, request: Callable[[], T], classify: Callable[[BaseException], RetryDecision]
    ) -> T:
        """Call `request` until it returns, a non-retryable error escapes, or the budget ends."""
        deadline = self._clock() + self.max_total_s
        sent = 0
        last_error: BaseException = TimeoutError("the shared wait exceeds the time budget")
        last_message = str(last_error)
        while sent < self.max_attempts:
            if not self.wait_turn(deadline):
                break
            sent += 1
            try:
                return request()
            except Exception as error:
                decision = classify(error)
                if not decision.retry:
                    raise
                last_error, last_message = error, decision.message or str(error)
            if sent == self.max_attempts:
                break
            pause = self.delay(sent - 1, decision.retry_after_s)
            if self._clock() + pause > deadline:
                break
            if decision.shared:
                # Everyone waits, this process included (through wait_turn above).
                self.push(pause, reason=last_message[:200])
            else:
                self._sleep(pause)
        raise BackoffExhausted(
            sent, last_error, f"API unavailable after {sent} attempts: {last_message}"
        )
