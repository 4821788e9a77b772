"""A judge through the Claude Code CLI: how a Claude login (or an OAuth token) judges.

The Messages API does not take a subscription login from the SDK, so with only a login the
judges ask the CLI, as upstream did. What the CLI (2.1.x) does here, pinned by
tests/test_cli_judge.py:

* ``claude -p --output-format json --model M --json-schema S --tools ""``: the one tool the
  model is offered is ``StructuredOutput`` with ``input_schema`` S. The CLI checks the
  answer against S itself (a mismatch goes back to the model as an error tool_result, a
  text answer gets "[structured-output-enforce] You MUST call the StructuredOutput tool")
  and prints one final object whose ``structured_output`` is the answer.
* ``--system-prompt-file`` replaces Claude Code's own system prompt (about 7,000 tokens)
  with the judge's instructions and the stable part of the request; the evidence of the run
  is the prompt, on stdin (it may be larger than one argument can be).
* The process gets a private HOME and CLAUDE_CONFIG_DIR (a 0400 copy of the login inside,
  or the credential variables), an empty working directory, no MCP servers, no settings
  files, no saved session; it is killed with its process group at the timeout.

The answer is then checked against the rubric by ``validate_answer``, the API judge's own
check on the same pydantic model; a rubric problem is sent back in a new CLI call, up to
``max_attempts``. Every failure ends as a ``failed`` JudgeRecord with one redacted line.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from pytest_scylla.agents.claude_code import CONFIG_DIR_NAME, QUIET_ENV, ClaudeNotFound, find_claude
from pytest_scylla.credentials import LOGIN_FILE_NAME, ClaudeCredentials
from pytest_scylla.judges.cache import JudgeCache, canonical_json, request_key
from pytest_scylla.judges.llm import (
    DEFAULT_REQUEST_TIMEOUT_S,
    PROMPT_FILE,
    InvalidAnswer,
    answered_record,
    finish_judgment,
    validate_answer,
)
from pytest_scylla.judges.prompt import (
    ANSWER_TOOL_NAME,
    INSTRUCTIONS,
    JudgeAnswer,
    JudgeInput,
    build_judge_request,
)
from pytest_scylla.pricing import PricingTable
from pytest_scylla.records import (
    JudgeRecord,
    TokenUsage,
    atomic_write_text,
)
from pytest_scylla.redact import Redactor, session_redactor
from pytest_scylla.spec.rubric import NormalizedItem

BACKEND = "cli"
# The tool --json-schema gives the model; the judge's text names it instead of ours.
STRUCTURED_OUTPUT_TOOL = "StructuredOutput"
STDERR_TAIL_CHARS = 500
# Beside the credentials: where the API is, and the CLI's own retry budget.
PASSTHROUGH_ENV = ("ANTHROPIC_BASE_URL", "CLAUDE_CODE_MAX_RETRIES")


class CliAnswerLog(BaseModel):
    """One CLI call of a judgment, as response.json keeps it (redacted)."""

    attempt: int
    exit_code: int | None = None
    timed_out: bool = False
    subtype: str | None = None
    is_error: bool = False
    api_error_status: int | None = None
    structured_output: Any = None
    result_text: str = ""
    usage: TokenUsage = TokenUsage()
    cost_usd: float = 0.0
    validation_error: str | None = None
    stderr_tail: str = ""


class CliJudgeLog(BaseModel):
    """response.json of a CLI judgment: every call, redacted."""

    model: str
    backend: str = BACKEND
    cached: bool = False
    cache_key: str | None = None
    answers: list[CliAnswerLog] = Field(default_factory=list)
    error: str | None = None


class CliCall(BaseModel):
    """What one CLI process left: its final result object (None: it printed none)."""

    exit_code: int | None
    timed_out: bool
    result: dict[str, Any] | None
    stderr_tail: str


def _usage(result: Mapping[str, Any]) -> TokenUsage:
    usage = result.get("usage")
    if not isinstance(usage, dict):
        return TokenUsage()
    return TokenUsage(
        **{
            name: int(usage.get(name) or 0)
            for name in (
                "input_tokens",
                "output_tokens",
                "cache_creation_input_tokens",
                "cache_read_input_tokens",
            )
        }
    )


def _last_json_object(stdout: str) -> dict[str, Any] | None:
    """The final result object (``--output-format json`` prints one, last)."""
    for line in reversed(stdout.strip().splitlines()):
        try:
            value = json.loads(line)
        except ValueError:
            continue
        if isinstance(value, dict) and value.get("type") == "result":
            return value
    return None


def cli_texts(
    judge_input: JudgeInput, items: list[NormalizedItem], redactor: Redactor
) -> tuple[str, str]:
    """(system prompt, prompt): the API judge's request as text, naming the CLI's tool."""
    request = build_judge_request(judge_input, items, redactor=redactor, prompt_cache=False)
    system = "\n\n".join(block["text"] for block in request.system)
    prompt = "\n\n".join(
        block["text"]
        for message in request.messages
        for block in message["content"]
        if block.get("type") == "text"
    )
    # Only our own texts name the tool: the task or rubric may not be rewritten.
    system = system.replace(
        INSTRUCTIONS, INSTRUCTIONS.replace(ANSWER_TOOL_NAME, STRUCTURED_OUTPUT_TOOL)
    )
    closing = "through the submit_judgment tool."
    if prompt.endswith(closing):
        prompt = prompt[: -len(closing)] + f"through the {STRUCTURED_OUTPUT_TOOL} tool."
    return system, prompt


class CliJudge:
    """A panel member asking the Claude Code CLI (``Judge`` protocol)."""

    backend = BACKEND

    def __init__(
        self,
        model: str,
        *,
        credentials: ClaudeCredentials,
        pricing: PricingTable,
        cache: JudgeCache | None = None,
        claude_bin: str | None = None,
        redactor: Redactor | None = None,
        timeout_s: float = DEFAULT_REQUEST_TIMEOUT_S,
        max_attempts: int = 3,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self.model = model
        self.credentials = credentials
        self.pricing = pricing
        self.cache = cache
        self.claude_bin = claude_bin
        self.timeout_s = timeout_s
        self.max_attempts = max_attempts
        environ = os.environ if environ is None else environ
        self._passthrough = {name: environ[name] for name in PASSTHROUGH_ENV if environ.get(name)}
        # Our own redactor: the credentials' values go into a copy, never into the caller's.
        self.redactor = Redactor(redactor.secrets if redactor else session_redactor().secrets)
        for secret in credentials.secrets:
            self.redactor.add(secret)

    def __repr__(self) -> str:
        return f"CliJudge({self.model!r}, {self.credentials!r})"

    def judge(
        self, judge_input: JudgeInput, items: list[NormalizedItem], out_dir: Path
    ) -> JudgeRecord:
        started = time.monotonic()
        system, prompt = cli_texts(judge_input, items, self.redactor)
        schema = JudgeAnswer.model_json_schema()
        canonical = canonical_json(
            {
                "backend": BACKEND,
                "model": self.model,
                "system": system,
                "prompt": prompt,
                "schema": schema,
            }
        )
        key = request_key(self.model, canonical)
        atomic_write_text(out_dir / PROMPT_FILE, self._render(system, prompt, schema))
        log = CliJudgeLog(model=self.model, cache_key=key)
        if self.cache is not None:
            hit = self.cache.get(key)
            if hit is not None:
                hit.latency_s = time.monotonic() - started
                log.cached = True
                return self._finish(out_dir, hit, log)
        record = self._ask(system, prompt, schema, items, log)
        record.prompt_sha256 = hashlib.sha256(canonical.encode()).hexdigest()
        record.latency_s = time.monotonic() - started
        if self.cache is not None:
            self.cache.put(key, record)  # ok judgments only
        return self._finish(out_dir, record, log)

    def _ask(
        self,
        system: str,
        prompt: str,
        schema: dict[str, Any],
        items: list[NormalizedItem],
        log: CliJudgeLog,
    ) -> JudgeRecord:
        tokens = TokenUsage()
        cli_cost = 0.0
        asked = prompt
        problem = ""
        for attempt in range(1, self.max_attempts + 1):
            try:
                call = self.run_cli(system, asked, schema)
            except (ClaudeNotFound, OSError) as error:
                return self._failed(tokens, attempt - 1, f"could not start the CLI: {error}", log)
            entry = CliAnswerLog(
                attempt=attempt,
                exit_code=call.exit_code,
                timed_out=call.timed_out,
                stderr_tail=call.stderr_tail,
            )
            log.answers.append(entry)
            if call.timed_out:
                return self._failed(
                    tokens, attempt, f"the CLI timed out after {self.timeout_s:g} s", log
                )
            result = call.result
            if result is None:
                tail = call.stderr_tail.strip().splitlines()[-1:] or [""]
                text = f"the CLI exited with code {call.exit_code} without a result"
                return self._failed(
                    tokens, attempt, text + (f": {tail[0]}" if tail[0] else ""), log
                )
            entry.usage = _usage(result)
            entry.subtype = str(result.get("subtype")) if result.get("subtype") else None
            entry.is_error = bool(result.get("is_error"))
            status = result.get("api_error_status")
            entry.api_error_status = status if isinstance(status, int) else None
            entry.structured_output = result.get("structured_output")
            entry.result_text = str(result.get("result") or "")
            cost = result.get("total_cost_usd")
            entry.cost_usd = float(cost) if isinstance(cost, (int, float)) else 0.0
            tokens = tokens + entry.usage
            cli_cost += entry.cost_usd
            if entry.is_error:
                detail = f"HTTP {entry.api_error_status}: " if entry.api_error_status else ""
                text = f"the CLI reported an error ({entry.subtype}): {detail}{entry.result_text}"
                return self._failed(tokens, attempt, text.strip(), log, cli_cost=cli_cost)
            try:
                if entry.structured_output is None:
                    raise InvalidAnswer(f"no {STRUCTURED_OUTPUT_TOOL} answer")
                answer = validate_answer(entry.structured_output, items)
            except InvalidAnswer as invalid:
                problem = str(invalid)
                entry.validation_error = problem
                asked = (
                    f"{prompt}\n\nYour previous answer was rejected: {problem}. Answer again, "
                    f"complete and corrected, through the {STRUCTURED_OUTPUT_TOOL} tool."
                )
                continue
            return answered_record(
                self.model,
                answer,
                self.redactor,
                tokens=tokens,
                attempts=attempt,
                cost_usd=self._cost(tokens, cli_cost),
            )
        reason = f"invalid answer after {self.max_attempts} attempts: {problem}"
        return self._failed(tokens, self.max_attempts, reason, log, cli_cost=cli_cost)

    def _cost(self, tokens: TokenUsage, cli_cost: float) -> float:
        """The price table's, as for the API judge; the CLI's own list price for a model
        the table does not know."""
        cost = self.pricing.cost_or_none(self.model, tokens)
        return cli_cost if cost is None else cost

    def argv(self, schema: dict[str, Any], system_file: Path) -> list[str]:
        return [
            find_claude(self.claude_bin),
            "-p",
            "--output-format",
            "json",
            "--model",
            self.model,
            "--json-schema",
            json.dumps(schema),
            "--tools",
            "",
            "--system-prompt-file",
            str(system_file),
            "--strict-mcp-config",
            "--setting-sources",
            "",
            "--no-session-persistence",
            "--disable-slash-commands",
        ]

    def run_cli(self, system: str, prompt: str, schema: dict[str, Any]) -> CliCall:
        """One CLI process in a private scratch folder that is gone when it returns."""
        with tempfile.TemporaryDirectory(prefix="scylla-cli-judge-") as scratch_name:
            scratch = Path(scratch_name)
            home = scratch / "home"
            config = home / CONFIG_DIR_NAME
            work = scratch / "work"  # the CLI's working directory: empty
            for folder in (home, config, work, home / "tmp"):
                folder.mkdir(mode=0o700)
            system_file = scratch / "system.md"
            system_file.write_text(system, encoding="utf-8")
            if self.credentials.login is not None:
                self.credentials.login.write_copy(config / LOGIN_FILE_NAME)
            env = {
                "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
                "HOME": str(home),
                "CLAUDE_CONFIG_DIR": str(config),
                "TMPDIR": str(home / "tmp"),
                "LANG": "C.UTF-8",
                "LC_ALL": "C.UTF-8",
                **QUIET_ENV,
                **self._passthrough,
                **self.credentials.env,
            }
            return self._communicate(self.argv(schema, system_file), env, work, prompt)

    def _communicate(self, argv: list[str], env: dict[str, str], cwd: Path, prompt: str) -> CliCall:
        process = subprocess.Popen(
            argv,
            cwd=cwd,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,  # its own group: a timeout kills all it started
        )
        timed_out = False
        try:
            stdout, stderr = process.communicate(prompt.encode("utf-8"), timeout=self.timeout_s)
        except subprocess.TimeoutExpired:
            timed_out = True
            _kill_group(process)
            stdout, stderr = process.communicate()
        finally:
            if process.poll() is None:  # Ctrl-C while waiting: nothing may stay behind
                _kill_group(process)
                process.wait()
        text = stdout.decode("utf-8", "replace")
        return CliCall(
            exit_code=process.returncode,
            timed_out=timed_out,
            result=None if timed_out else _last_json_object(text),
            stderr_tail=stderr.decode("utf-8", "replace")[-STDERR_TAIL_CHARS:],
        )

    def _render(self, system: str, prompt: str, schema: dict[str, Any]) -> str:
        """prompt.md: what the CLI is given, as a person reads it (texts already redacted)."""
        return "\n".join(
            [
                f"# Judge prompt for {self.model} (Claude Code CLI)",
                "",
                "## system (--system-prompt-file)",
                "",
                system,
                "",
                "## user (stdin)",
                "",
                prompt,
                "",
                f"## answer schema (--json-schema, tool {STRUCTURED_OUTPUT_TOOL})",
                "",
                "```json",
                json.dumps(schema, indent=2),
                "```",
                "",
            ]
        )

    def _failed(
        self,
        tokens: TokenUsage,
        attempts: int,
        error: str,
        log: CliJudgeLog,
        *,
        cli_cost: float = 0.0,
    ) -> JudgeRecord:
        error = self.redactor(" ".join(error.split()))
        log.error = error
        return JudgeRecord(
            model=self.model,
            status="failed",
            error=error,
            tokens=tokens,
            cost_usd=self._cost(tokens, cli_cost) if tokens.total else 0.0,
            attempts=attempts,
        )

    def _finish(self, out_dir: Path, record: JudgeRecord, log: CliJudgeLog) -> JudgeRecord:
        return finish_judgment(out_dir, record, log, self.redactor, backend=BACKEND)


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
