"""Keep secrets out of everything we write: records, logs, reports, error messages."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping

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
