"""Keep secrets out of everything we write: records, logs, reports, error messages."""

from __future__ import annotations

import json
import os
import re
import stat
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

REDACTED = "[REDACTED]"
# Names whose values are credentials; matched case-insensitively against env var names.
SECRET_NAME = re.compile(
    r"(API_KEY|AUTH_TOKEN|OAUTH_TOKEN|SECRET|PASSWORD|ACCESS_KEY|_TOKEN)$", re.I
)
# Credential shapes that may reach us without an env var (a key pasted into a config).
SECRET_SHAPES = (re.compile(r"sk-ant-[A-Za-z0-9_\-]{8,}"),)
MIN_SECRET_LENGTH = 6  # shorter values would redact ordinary words

# Where a secret is the value after a marker, the marker stays and the value goes.
# A value ends at whitespace, a quote, a backslash (a JSON-escaped quote) or a separator.
_VALUE = rf"""(?:{re.escape(REDACTED)}|[^\s"'\\,;&|)}}\]]+)"""
# A quote right before `,` `:` `}` or `]` ends a JSON string or a repr's item
# (`["MY_TOKEN=", ...]`): it opens no value, and taking it as one would break the document.
_QUOTED_VALUE = (
    r"""(?:"(?!\s*[,:}\]])(?:\\.|[^"\\])*"|'(?!\s*[,:}\]])[^'\\]*'"""
    r"""|\\"(?:[^"\\]|\\[^"])*\\")"""
)
# Key names in quoted `"key": "value"` pairs (JSON, Python reprs, YAML): wider than
# SECRET_NAME, because header names and camelCase keys ("x-api-key", "accessToken") count.
# Not a bare "key": "cache_key" is no secret.
_SECRET_KEY_NAME = (
    r"[\w.\-]*(?:api[-_]?key|access[-_]?key|token|secret|password|passwd|authorization)"
)


@dataclass(frozen=True)
class MarkedSecret:
    """A secret that follows a marker: the marker stays, the value goes.

    The pattern runs only on text holding one of `words` (lowercased, unless `exact_words`):
    most text holds none, and checking first keeps redaction near the speed of plain
    replacement, since patterns that start with \\b or (?i) are tried at every position.
    """

    words: tuple[str, ...]
    pattern: re.Pattern[str]
    exact_words: bool = False


_QUOTE_AFTER = ('"', "'")
MARKED_SECRETS = (
    # HTTP headers in any text: curl -H "Authorization: Bearer X", "x-api-key: X", logs.
    MarkedSecret(
        ("authorization",),
        re.compile(
            r"(?i)(\b(?:proxy-)?authorization\s*[:=]\s*(?:(?:bearer|basic|token)\s+)?)" + _VALUE
        ),
    ),
    MarkedSecret(("x-api-key",), re.compile(r"(?i)(\bx-api-key\s*[:=]\s*)" + _VALUE)),
    # A bearer token outside a header line (a JSON header dump, an error message).
    MarkedSecret(("bearer",), re.compile(r"(?i)(\bbearer\s+)[A-Za-z0-9._~+/=\-]{8,}")),
    # Env-like NAME=value (uppercase names, as environments spell them), quoted or not:
    # `export GITHUB_TOKEN=...`, `env MY_SECRET="..."`, a dumped environment.
    MarkedSecret(
        ("KEY=", "TOKEN=", "SECRET=", "PASSWORD="),
        re.compile(
            r"(\b[A-Z0-9_]*(?:API_KEY|AUTH_TOKEN|OAUTH_TOKEN|SECRET|PASSWORD|ACCESS_KEY|_TOKEN)=)"
            rf"(?:{_QUOTED_VALUE}|{_VALUE})"
        ),
        exact_words=True,
    ),
    # "key": "value" / 'key': 'value' with a secret-looking key (JSON, dict reprs).
    MarkedSecret(
        tuple(
            word + quote
            for word in ("key", "token", "secret", "password", "passwd", "authorization")
            for quote in _QUOTE_AFTER
        ),
        re.compile(
            rf"""(?i)((["'])(?:{_SECRET_KEY_NAME})\2\s*[:=]\s*)(?:"(?:\\.|[^"\\])+"|'(?:\\.|[^'\\])+')"""
        ),
    ),
)
# A credentials file larger than this is not Claude Code's: it is not read.
MAX_CREDENTIALS_FILE_BYTES = 1 << 20
_CREDENTIAL_KEY = re.compile(rf"(?i)^{_SECRET_KEY_NAME}$|token$|key$")


def secrets_from_env(environ: Mapping[str, str] | None = None) -> list[str]:
    environ = os.environ if environ is None else environ
    return [
        value
        for name, value in environ.items()
        if SECRET_NAME.search(name) and len(value) >= MIN_SECRET_LENGTH
    ]


def credentials_file(environ: Mapping[str, str] | None = None) -> Path:
    """Claude Code's credentials file: `$CLAUDE_CONFIG_DIR/.credentials.json`, else in ~/.claude."""
    environ = os.environ if environ is None else environ
    config_dir = environ.get("CLAUDE_CONFIG_DIR")
    base = Path(config_dir) if config_dir else Path.home() / ".claude"
    return base / ".credentials.json"


def read_credentials_document(path: Path) -> Any | None:
    """The parsed JSON of a Claude Code credentials file; None when it is absent or odd.

    The file is ours to protect, not the agent's: it is read without following a symlink
    and with a size cap (`credentials.read_login` hands out only what is read here).
    """
    try:
        # Non-blocking: a FIFO in its place must not hang the session.
        descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    with os.fdopen(descriptor, "rb") as handle:
        if not stat.S_ISREG(os.fstat(descriptor).st_mode):
            return None
        raw = handle.read(MAX_CREDENTIALS_FILE_BYTES + 1)
    if len(raw) > MAX_CREDENTIALS_FILE_BYTES:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return None


def secrets_from_credentials_file(path: Path | None = None) -> list[str]:
    """The token values in a Claude Code credentials file (nothing when it is absent or odd).

    The file is ours to protect, not the agent's: it is read without following a symlink
    and with a size cap, and a file that is not JSON holds no secrets we could name.
    """
    return secrets_in_credentials(
        read_credentials_document(credentials_file() if path is None else path)
    )


def secrets_in_credentials(document: Any) -> list[str]:
    """The token values in a parsed credentials document (token-, key- or secret-named)."""
    found: list[str] = []

    def walk(value: Any, key: str) -> None:
        if isinstance(value, dict):
            for name, inner in value.items():
                walk(inner, str(name))
        elif isinstance(value, list):
            for inner in value:
                walk(inner, key)
        elif (
            isinstance(value, str)
            and len(value) >= MIN_SECRET_LENGTH
            and _CREDENTIAL_KEY.search(key)
        ):
            found.append(value)

    walk(document, "")
    return found


def session_redactor(environ: Mapping[str, str] | None = None) -> Redactor:
    """A redactor that knows every secret this process could hand out: the environment's
    secret-named variables and the Claude Code credentials file's tokens."""
    return Redactor(
        [*secrets_from_env(environ), *secrets_from_credentials_file(credentials_file(environ))]
    )


class Redactor:
    def __init__(self, secrets: Iterable[str] = ()) -> None:
        # Longest first, so a secret that contains another is replaced whole.
        self.secrets = sorted(
            {s for s in secrets if len(s) >= MIN_SECRET_LENGTH}, key=len, reverse=True
        )

    def __repr__(self) -> str:
        # The default repr is harmless, but a dataclass-style one would list the secrets.
        return f"Redactor({len(self.secrets)} secrets)"

    def add(self, secret: str) -> None:
        if len(secret) >= MIN_SECRET_LENGTH and secret not in self.secrets:
            self.secrets = sorted([*self.secrets, secret], key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, REDACTED)
        for shape in SECRET_SHAPES:
            text = shape.sub(REDACTED, text)
        lowered = text.lower()
        for marked in MARKED_SECRETS:
            haystack = text if marked.exact_words else lowered
            if any(word in haystack for word in marked.words):
                text = marked.pattern.sub(_keep_marker, text)
        return text

    def env(self, environ: Mapping[str, str]) -> dict[str, str]:
        """An environment fit for a log: secret-named values hidden, the rest redacted."""
        return {
            name: REDACTED if SECRET_NAME.search(name) else self(value)
            for name, value in environ.items()
        }

    def tree(self, value: Any) -> Any:
        """A copy of a JSON-like value (dicts, lists, tuples, strings) with every string
        redacted, keys included; other values are kept as they are."""
        if isinstance(value, str):
            return self(value)
        if isinstance(value, dict):
            return {self.tree(key): self.tree(inner) for key, inner in value.items()}
        if isinstance(value, list):
            return [self.tree(inner) for inner in value]
        if isinstance(value, tuple):
            return tuple(self.tree(inner) for inner in value)
        return value


def _keep_marker(match: re.Match[str]) -> str:
    marker = match.group(1)
    value = match.group(0)[len(marker) :]
    quote = value[0] if value[:1] in ("'", '"') else ""
    if value.startswith('\\"'):
        quote = '\\"'
    return f"{marker}{quote}{REDACTED}{quote}"


class SecretEnv(Mapping[str, str]):
    """Environment variables to hand to a process, whose values never show in a repr or str
    (a traceback prints the reprs of a frame's arguments)."""

    def __init__(self, values: Mapping[str, str] | None = None) -> None:
        self._values = dict(values or {})

    def __getitem__(self, name: str) -> str:
        return self._values[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"SecretEnv({', '.join(f'{name}=<hidden>' for name in self._values)})"

    __str__ = __repr__


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
