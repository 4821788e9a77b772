"""Which Claude credentials this session has, and which part of it may use which.

The check before the first run and every part of a run ask these functions, so what the
check accepts is exactly what the parts get:

* ``claude_code_credentials``: what a Claude Code CLI process (the claude-code agent, the
  ``cli`` judge backend) is given. The environment's ``ANTHROPIC_API_KEY``,
  ``ANTHROPIC_AUTH_TOKEN`` and ``CLAUDE_CODE_OAUTH_TOKEN`` pass through as they are (the CLI
  has its own precedence among them); without any of them, the Claude login
  (``$CLAUDE_CONFIG_DIR/.credentials.json``, else ``~/.claude/.credentials.json``, what
  ``claude login`` writes) is given to the process as a private read-only copy; without a
  login, ``ANTHROPIC_BASE_URL`` alone (a local server that wants no key) gets a placeholder
  key, since the CLI refuses to start with none.
* ``api_credentials``: what the ``api`` judge backend's anthropic client gets:
  ``ANTHROPIC_API_KEY``, else ``ANTHROPIC_AUTH_TOKEN`` (the SDK's own precedence), else the
  placeholder with a base URL. A login or an OAuth token is a subscription credential the
  Messages API does not take from the SDK: only the CLI uses it.
* ``judge_credentials``: which backend judges (``auto``: the API when it has a credential,
  else the CLI with a login or OAuth token) and with what.
* ``missing_credentials``: the one line the check before the first run stops with.

Objects here hold secrets: their reprs name the source, never the value.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pytest_scylla.redact import (
    SecretEnv,
    credentials_file,
    read_credentials_document,
    secrets_in_credentials,
)

API_KEY = "ANTHROPIC_API_KEY"
AUTH_TOKEN = "ANTHROPIC_AUTH_TOKEN"
OAUTH_TOKEN = "CLAUDE_CODE_OAUTH_TOKEN"
BASE_URL = "ANTHROPIC_BASE_URL"
# Every credential a Claude Code process may take from the environment, in the CLI's order.
ENV_CREDENTIALS = (API_KEY, AUTH_TOKEN, OAUTH_TOKEN)
# A local server that wants no key (ANTHROPIC_BASE_URL alone); the SDK and the CLI insist
# on one.
NO_KEY = "no-key"
LOGIN_FILE_NAME = ".credentials.json"
LOGIN_DESCRIPTION = "a Claude login (claude login: ~/.claude/.credentials.json)"

JudgeBackend = Literal["api", "cli"]
JudgeBackendChoice = Literal["api", "cli", "auto"]


def login_file_path(environ: Mapping[str, str] | None = None) -> Path:
    """Where Claude Code keeps its login: ``$CLAUDE_CONFIG_DIR/.credentials.json``, else
    ``~/.claude/.credentials.json`` (the session redactor reads the same file)."""
    return credentials_file(os.environ if environ is None else environ)


@dataclass(frozen=True, repr=False)
class LoginFile:
    """A Claude login read once, carefully (no symlink, size cap, JSON with an access token).

    ``write_copy`` gives a run the document as read: the original is never mounted or
    linked, so nothing a run does reaches it.
    """

    path: Path
    document: dict[str, Any]
    secrets: tuple[str, ...]

    def __repr__(self) -> str:
        return f"LoginFile({str(self.path)!r}, <hidden>)"

    __str__ = __repr__

    def write_copy(self, target: Path) -> None:
        """Write the login to ``target`` (a new file, 0400, never through a symlink)."""
        target.parent.mkdir(parents=True, exist_ok=True)
        data = json.dumps(self.document).encode("utf-8")
        descriptor = os.open(
            target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600
        )
        try:
            os.write(descriptor, data)
        finally:
            os.close(descriptor)
        os.chmod(target, 0o400)


@dataclass(frozen=True)
class LoginCheck:
    """The login file as found: usable (``login``) or why not (``problem``)."""

    path: Path
    login: LoginFile | None = None
    problem: str | None = None


def read_login(environ: Mapping[str, str] | None = None) -> LoginCheck:
    """The Claude login of this environment, or why there is none to use."""
    return read_login_file(login_file_path(environ))


def read_login_file(path: Path) -> LoginCheck:
    """A Claude login file read as the redactor reads it, or why it cannot be used."""
    if not os.path.lexists(path):
        return LoginCheck(path, problem=f"{path} does not exist")
    if os.path.islink(path):
        # The redactor does not follow it either: a token it cannot see must not be handed out.
        return LoginCheck(path, problem=f"{path} is a symlink (not followed)")
    document = read_credentials_document(path)
    oauth = document.get("claudeAiOauth") if isinstance(document, dict) else None
    token = oauth.get("accessToken") if isinstance(oauth, dict) else None
    if not isinstance(document, dict) or not isinstance(token, str) or not token:
        return LoginCheck(path, problem=f"{path} holds no claudeAiOauth.accessToken")
    login = LoginFile(
        path=path,
        document=document,
        secrets=tuple(secrets_in_credentials(document)),
    )
    return LoginCheck(path, login=login)


@dataclass(frozen=True, repr=False)
class ClaudeCredentials:
    """What a Claude Code CLI process gets: environment variables, or a login to copy."""

    source: str  # for messages and records: "ANTHROPIC_API_KEY", "Claude login", ...
    env: SecretEnv = field(default_factory=SecretEnv)
    login: LoginFile | None = None

    def __repr__(self) -> str:
        return f"ClaudeCredentials({self.source}, {self.env!r})"

    __str__ = __repr__

    @property
    def secrets(self) -> list[str]:
        """Every secret value these credentials hand out (for a redactor)."""
        values = [value for value in self.env.values() if value != NO_KEY]
        return values + list(self.login.secrets if self.login else ())


@dataclass(frozen=True, repr=False)
class ApiCredentials:
    """The one credential the anthropic client gets: ``{"api_key": ...}`` or
    ``{"auth_token": ...}`` (the SDK refuses both at once)."""

    source: str
    client_kwargs: SecretEnv

    def __repr__(self) -> str:
        return f"ApiCredentials({self.source}, {self.client_kwargs!r})"

    __str__ = __repr__


@dataclass(frozen=True, repr=False)
class JudgeCredentials:
    backend: JudgeBackend
    api: ApiCredentials | None = None
    cli: ClaudeCredentials | None = None

    def __repr__(self) -> str:
        return f"JudgeCredentials({self.backend}, {self.api or self.cli!r})"

    __str__ = __repr__


def claude_code_credentials(environ: Mapping[str, str] | None = None) -> ClaudeCredentials | None:
    """What the claude-code agent (and the CLI judge) can use; None: nothing."""
    environ = os.environ if environ is None else environ
    env = {name: environ[name] for name in ENV_CREDENTIALS if environ.get(name)}
    if env:
        return ClaudeCredentials(source=", ".join(env), env=SecretEnv(env))
    check = read_login(environ)
    if check.login is not None:
        return ClaudeCredentials(source="Claude login", login=check.login)
    if environ.get(BASE_URL):
        return ClaudeCredentials(
            source=f"{BASE_URL} without a key", env=SecretEnv({API_KEY: NO_KEY})
        )
    return None


def api_credentials(environ: Mapping[str, str] | None = None) -> ApiCredentials | None:
    """What the API judge backend (the anthropic SDK) can use; None: nothing."""
    environ = os.environ if environ is None else environ
    if environ.get(API_KEY):
        return ApiCredentials(API_KEY, SecretEnv({"api_key": environ[API_KEY]}))
    if environ.get(AUTH_TOKEN):
        return ApiCredentials(AUTH_TOKEN, SecretEnv({"auth_token": environ[AUTH_TOKEN]}))
    if environ.get(BASE_URL):
        return ApiCredentials(f"{BASE_URL} without a key", SecretEnv({"api_key": NO_KEY}))
    return None


def judge_credentials(
    choice: JudgeBackendChoice, environ: Mapping[str, str] | None = None
) -> JudgeCredentials | None:
    """What the judges can use, and through which backend; None: nothing.

    ``auto`` takes the API with a key or token of its own, else the CLI with a login or an
    OAuth token, else the API with a bare base URL.
    """
    environ = os.environ if environ is None else environ
    if choice == "api":
        api = api_credentials(environ)
        return JudgeCredentials("api", api=api) if api else None
    if choice == "cli":
        cli = claude_code_credentials(environ)
        return JudgeCredentials("cli", cli=cli) if cli else None
    if environ.get(API_KEY) or environ.get(AUTH_TOKEN):
        return JudgeCredentials("api", api=api_credentials(environ))
    cli = claude_code_credentials(environ)
    if cli is not None and (cli.login is not None or environ.get(OAUTH_TOKEN)):
        return JudgeCredentials("cli", cli=cli)
    api = api_credentials(environ)
    return JudgeCredentials("api", api=api) if api else None


def missing_credentials(
    environ: Mapping[str, str] | None = None,
    *,
    agent: str | None,
    judges: list[str],
    judge_backend: JudgeBackendChoice = "auto",
) -> str | None:
    """One line saying which part lacks what, or None when every part has a credential.

    ``agent``: the claude-code agent's label when it will run; ``judges``: the LLM judges.
    """
    environ = os.environ if environ is None else environ
    wants: list[str] = []
    if agent is not None and claude_code_credentials(environ) is None:
        wants.append(f"{agent} needs {_claude_code_sources()}")
    if judges and judge_credentials(judge_backend, environ) is None:
        label = ", ".join(f"judge {model}" for model in judges)
        if judge_backend == "api":
            need = f"{API_KEY} or {AUTH_TOKEN} (a Claude login needs --judge-backend cli)"
        else:
            need = _claude_code_sources()
        wants.append(f"{label} need(s) {need}")
    if not wants:
        return None
    check = read_login(environ)
    why = f" ({check.problem})" if check.problem and os.path.lexists(check.path) else ""
    return (
        f"pytest-scylla: {'; '.join(wants)}{why}; or pass --scylla-fake-api SCRIPT for an "
        "offline dry run, or --judge-model none with --agent oracle|nop|command"
    )


def _claude_code_sources() -> str:
    return f"{API_KEY}, {AUTH_TOKEN}, {OAUTH_TOKEN} or {LOGIN_DESCRIPTION}"
