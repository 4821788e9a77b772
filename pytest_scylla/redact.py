"""Keep secrets out of everything we write: records, logs, reports, error messages."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from typing import BinaryIO

REDACTED = "[REDACTED]"
# Names whose values are credentials; matched case-insensitively against env var names.
SECRET_NAME = re.compile(
    r"(API_KEY|AUTH_TOKEN|OAUTH_TOKEN|SECRET|PASSWORD|ACCESS_KEY|_TOKEN)$", re.I
)
# Credential shapes that may reach us without an env var (a key pasted into a config).
SECRET_SHAPES = (re.compile(r"sk-ant-[A-Za-z0-9_\-]{8,}"),)
MIN_SECRET_LENGTH = 6  # shorter values would redact ordinary words


def secrets_from_env(environ: Mapping[str, str] | None = None) -> list[str]:
    environ = os.environ if environ is None else environ
    return [
        value
        for name, value in environ.items()
        if SECRET_NAME.search(name) and len(value) >= MIN_SECRET_LENGTH
    ]


class Redactor:
    def __init__(self, secrets: Iterable[str] = ()) -> None:
        # Longest first, so a secret that contains another is replaced whole.
        self.secrets = sorted(
            {s for s in secrets if len(s) >= MIN_SECRET_LENGTH}, key=len, reverse=True
        )

    def add(self, secret: str) -> None:
        if len(secret) >= MIN_SECRET_LENGTH and secret not in self.secrets:
            self.secrets = sorted([*self.secrets, secret], key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, REDACTED)
        for shape in SECRET_SHAPES:
            text = shape.sub(REDACTED, text)
        return text

    def env(self, environ: Mapping[str, str]) -> dict[str, str]:
        """An environment fit for a log: secret-named values hidden, the rest redacted."""
        return {
            name: REDACTED if SECRET_NAME.search(name) else self(value)
            for name, value in environ.items()
        }


# A chunk boundary may cut a secret in two; holding back this much (or the longest secret,
# when longer) before writing lets the next chunk complete it.
STREAM_HOLDBACK_BYTES = 256
# A line longer than this is written in pieces: output with no newline must not pile up here.
STREAM_LINE_CAP_BYTES = 64 * 1024


class StreamRedactor:
    """Redacts output as it is written, so a killed run leaves nothing raw on disk.

    Whole lines are redacted and written as they complete; a partial line waits for the
    rest (up to STREAM_LINE_CAP_BYTES, then all but a hold-back is written). ``close()``
    writes what is left. Works on bytes: output that is not UTF-8 passes through unchanged
    where it holds no secret.
    """

    def __init__(self, redactor: Redactor, sink: BinaryIO) -> None:
        self.redactor = redactor
        self.sink = sink
        self._pending = b""
        longest = max((len(s.encode()) for s in redactor.secrets), default=0)
        self._holdback = max(STREAM_HOLDBACK_BYTES, longest)

    def _clean(self, data: bytes) -> bytes:
        if not data:
            return data
        text = data.decode("utf-8", errors="surrogateescape")
        return self.redactor(text).encode("utf-8", errors="surrogateescape")

    def write(self, chunk: bytes) -> None:
        if not chunk:
            return
        self._pending += chunk
        cut = self._pending.rfind(b"\n") + 1
        if cut:
            self.sink.write(self._clean(self._pending[:cut]))
            self._pending = self._pending[cut:]
        if len(self._pending) > STREAM_LINE_CAP_BYTES:
            cleaned = self._clean(self._pending)
            self.sink.write(cleaned[: -self._holdback])
            self._pending = cleaned[-self._holdback :]
        self.sink.flush()

    def close(self) -> None:
        self.sink.write(self._clean(self._pending))
        self._pending = b""
        self.sink.flush()
