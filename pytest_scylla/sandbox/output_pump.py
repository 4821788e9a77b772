"""Copy a process's stdout and stderr pipes to their files as the output arrives.

One thread reads both pipes (a selector, so neither can fill up and block the process
while the other is read) and writes through ``redact.StreamRedactor`` when a redactor is
given: whatever is on disk when the harness is interrupted or killed is already redacted.
Each complete stdout line is shown to ``stop_when``; a match sets ``last_word``.

A process that escaped the run may still hold a pipe open after the run ends: ``finish``
stops reading after a short drain instead of waiting for an end of file that never comes.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import threading
from typing import BinaryIO

from pytest_scylla.redact import Redactor, StreamRedactor
from pytest_scylla.sandbox.base import StopWhen

READ_BYTES = 64 * 1024
# A stdout line longer than this is not shown to stop_when (a final event is far smaller).
STOP_LINE_CAP_BYTES = 16 * 1024 * 1024


class _RawSink:
    """The StreamRedactor interface without redaction (no redactor given)."""

    def __init__(self, sink: BinaryIO) -> None:
        self.sink = sink

    def write(self, chunk: bytes) -> None:
        self.sink.write(chunk)
        self.sink.flush()

    def close(self) -> None:
        self.sink.flush()


class _LastWordWatch:
    """Splits stdout into lines for the stop_when predicate."""

    def __init__(self, stop_when: StopWhen, found: threading.Event) -> None:
        self.stop_when = stop_when
        self.found = found
        self._parts: list[bytes] = []  # the line so far, joined once it is complete
        self._size = 0
        self._too_long = False

    def feed(self, chunk: bytes) -> None:
        start = 0
        while (cut := chunk.find(b"\n", start)) >= 0:
            if not self._too_long:
                line = b"".join([*self._parts, chunk[start : cut + 1]])
                if self._matches(line):
                    self.found.set()
            self._parts, self._size, self._too_long = [], 0, False
            start = cut + 1
        rest = chunk[start:]
        if rest and not self._too_long:
            self._parts.append(rest)
            self._size += len(rest)
            if self._size > STOP_LINE_CAP_BYTES:
                self._parts, self._size, self._too_long = [], 0, True

    def _matches(self, line: bytes) -> bool:
        try:
            return bool(self.stop_when(line))
        except Exception:  # a predicate that fails on odd output must not stop the copying
            return False


class OutputPump:
    """Reads the two pipes of one process on a thread of its own until ``finish``."""

    def __init__(
        self,
        stdout_fd: int,
        stderr_fd: int,
        stdout_file: BinaryIO,
        stderr_file: BinaryIO,
        *,
        redactor: Redactor | None,
        stop_when: StopWhen | None,
    ) -> None:
        self.last_word = threading.Event()
        self._watch = None if stop_when is None else _LastWordWatch(stop_when, self.last_word)
        self._sinks = {
            stdout_fd: self._sink(stdout_file, redactor),
            stderr_fd: self._sink(stderr_file, redactor),
        }
        self._stdout_fd = stdout_fd
        self.watching = self._watch is not None  # whether last_word can ever be set
        self._wake_read, self._wake_write = os.pipe()
        self._thread = threading.Thread(target=self._pump, name="scylla-output", daemon=True)

    @staticmethod
    def _sink(file: BinaryIO, redactor: Redactor | None) -> StreamRedactor | _RawSink:
        if redactor is None:
            return _RawSink(file)
        return StreamRedactor(redactor, file)

    def start(self) -> None:
        self._thread.start()

    def finish(self, drain_s: float) -> None:
        """Wait up to drain_s for both pipes to end, then stop; write what is held back."""
        self._thread.join(drain_s)
        if self._thread.is_alive():
            os.write(self._wake_write, b"x")
            self._thread.join()
        os.close(self._wake_read)
        os.close(self._wake_write)

    def _copy(self, fd: int) -> bool:
        """Copy one read's worth; False at the end of the pipe (or when nothing is there)."""
        try:
            chunk = os.read(fd, READ_BYTES)
        except BlockingIOError:
            return False
        if not chunk:
            return False
        self._sinks[fd].write(chunk)
        if fd == self._stdout_fd and self._watch is not None:
            self._watch.feed(chunk)
        return True

    def _pump(self) -> None:
        open_fds = set(self._sinks)
        try:
            with selectors.DefaultSelector() as selector:
                for fd in open_fds:
                    selector.register(fd, selectors.EVENT_READ)
                selector.register(self._wake_read, selectors.EVENT_READ)
                while open_fds:
                    ready = [key.fd for key, _ in selector.select()]
                    if self._wake_read in ready:
                        break
                    for fd in ready:
                        if not self._copy(fd):
                            selector.unregister(fd)
                            open_fds.discard(fd)
            # Told to stop: what is already in the pipes still goes to disk, then no more.
            for fd in open_fds:
                os.set_blocking(fd, False)
                while self._copy(fd):
                    pass
        finally:
            for fd, sink in self._sinks.items():
                with contextlib.suppress(OSError, ValueError):
                    sink.close()
                with contextlib.suppress(OSError):
                    os.close(fd)
