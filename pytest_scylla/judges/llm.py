"""One LLM judge: a forced tool call, validated, retried, costed, written to disk.

The model answers through the `submit_judgment` tool (schema from `JudgeAnswer`). Its answer
is checked against the rubric (every item once, points in range, binary items 0 or full,
N/A only where allowed); an invalid answer is sent back as an error tool_result so the model
can correct itself, up to `max_attempts` answers. The score is never the model's: the
consensus module computes it from the items.

Model misbehaviour and API trouble never raise: they end as a JudgeRecord with status
"failed" and a one-line error, so the run is reported as an error and can be re-judged.
API retries are ours (the SDK's own retries are off) so that every xdist worker shares one
backoff (see backoff.py).

`JudgeRecord.attempts` counts answers requested from the model (1 = valid first time);
HTTP-level retries are not counted there, they only cost time.
"""

from __future__ import annotations

import functools
import hashlib
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

from pydantic import BaseModel, Field, ValidationError

from pytest_scylla.judges.backoff import BackoffExhausted, RetryDecision, SharedBackoff
from pytest_scylla.judges.cache import JudgeCache, canonical_json, request_key
from pytest_scylla.judges.prompt import (
    ANSWER_TOOL_NAME,
    JudgeAnswer,
    JudgeInput,
    JudgeRequest,
    build_judge_request,
    render_prompt,
)
from pytest_scylla.pricing import PricingTable, UnknownModelPrice
from pytest_scylla.records import (
    ItemJudgment,
    JudgeRecord,
    TokenUsage,
    atomic_write_json,
    atomic_write_text,
)
from pytest_scylla.redact import Redactor, session_redactor
from pytest_scylla.spec.rubric import NormalizedItem

if TYPE_CHECKING:  # imported where used: the SDK takes a second to import
    import anthropic

JUDGMENT_FILE = "judgment.json"
PROMPT_FILE = "prompt.md"
RESPONSE_FILE = "response.json"
DEFAULT_MAX_TOKENS = 8192  # room for reasons on ~50 items; below the SDK's non-streaming cap
DEFAULT_REQUEST_TIMEOUT_S = 300.0
RETRYABLE_STATUS = frozenset({408, 409, 429})
SHARED_STATUS = frozenset({429, 529})  # account-wide signals: every worker slows down
POINTS_TOLERANCE = 1e-9


class Judge(Protocol):
    """What a panel needs from a judge (LlmJudge, or a user's own in conftest.py)."""

    model: str

    def judge(
        self, judge_input: JudgeInput, items: list[NormalizedItem], out_dir: Path
    ) -> JudgeRecord: ...


class InvalidAnswer(ValueError):
    """The model's answer does not fit the rubric; the message is sent back to it."""


class AnswerLog(BaseModel):
    attempt: int
    stop_reason: str | None = None
    content: list[dict[str, Any]] = Field(default_factory=list)
    usage: TokenUsage = TokenUsage()
    validation_error: str | None = None


class JudgeResponseLog(BaseModel):
    """response.json: every raw answer of one judgment, redacted."""

    model: str
    cached: bool = False
    cache_key: str | None = None
    answers: list[AnswerLog] = Field(default_factory=list)
    api_error: str | None = None


def answered_record(
    model: str,
    answer: JudgeAnswer,
    redactor: Redactor,
    *,
    tokens: TokenUsage,
    attempts: int,
    cost_usd: float = 0.0,
) -> JudgeRecord:
    """The ok record of a validated answer, whichever backend asked (API or CLI)."""
    return JudgeRecord(
        model=model,
        status="ok",
        items={
            # Redacted before the record can reach the judge cache or the disk.
            a.item_id: ItemJudgment(achieved=a.achieved, reason=redactor(a.reason))
            for a in answer.items
        },
        overall_reasoning=redactor(answer.overall_reasoning),
        tokens=tokens,
        cost_usd=cost_usd,
        attempts=attempts,
    )


def finish_judgment(
    out_dir: Path, record: JudgeRecord, log: BaseModel, redactor: Redactor, *, backend: str
) -> JudgeRecord:
    """Every judgment of a backend, cached or not, leaves through here: its backend named,
    the response log and the judgment written to the run's judge folder."""
    record.backend = backend
    # Redact the serialized text: a secret may sit anywhere in a model's answer.
    atomic_write_text(out_dir / RESPONSE_FILE, redactor(log.model_dump_json(indent=2)) + "\n")
    atomic_write_json(out_dir / JUDGMENT_FILE, record)
    return record


def validate_answer(raw: Any, items: list[NormalizedItem]) -> JudgeAnswer:
    """Parse and check one tool input against the items to judge; raises InvalidAnswer."""
    if not isinstance(raw, dict):
        raise InvalidAnswer("the tool input must be a JSON object matching the schema")
    try:
        answer = JudgeAnswer.model_validate(raw)
    except ValidationError as error:
        details = "; ".join(
            f"{'.'.join(str(part) for part in e['loc']) or '(root)'}: {e['msg']}"
            for e in error.errors()
        )
        raise InvalidAnswer(f"the answer does not match the tool schema: {details}") from None
    by_id = {item.id: item for item in items}
    problems: list[str] = []
    seen: set[str] = set()
    for entry in answer.items:
        item = by_id.get(entry.item_id)
        if item is None:
            problems.append(f"unknown item id {entry.item_id!r}")
            continue
        if entry.item_id in seen:
            problems.append(f"item {entry.item_id!r} answered more than once")
        seen.add(entry.item_id)
        if entry.achieved is None:
            if not item.na_condition:
                problems.append(f"item {item.id!r} has no N/A condition: give points")
            continue
        if not -POINTS_TOLERANCE <= entry.achieved <= item.points + POINTS_TOLERANCE:
            problems.append(
                f"item {item.id!r}: {entry.achieved:g} is outside 0..{item.points:g} points"
            )
        elif item.binary and not (
            abs(entry.achieved) <= POINTS_TOLERANCE
            or abs(entry.achieved - item.points) <= POINTS_TOLERANCE
        ):
            problems.append(f"item {item.id!r} is binary: give 0 or {item.points:g}")
    missing = [item.id for item in items if item.id not in seen]
    if missing:
        problems.append("missing items: " + ", ".join(missing))
    if problems:
        raise InvalidAnswer("; ".join(problems))
    return answer


def _retry_after(error: anthropic.APIStatusError) -> float | None:
    headers = error.response.headers
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            return max(0.0, float(value) * scale)
        except ValueError:
            continue  # an HTTP date: rare from this API; the exponential delay applies
    return None


def classify_api_error(error: BaseException) -> RetryDecision:
    """Which SDK errors are worth another request, and whether all workers should wait."""
    import anthropic  # loaded already: a request was sent

    if isinstance(error, anthropic.APITimeoutError):
        return RetryDecision(retry=True, message="request timed out")
    if isinstance(error, anthropic.APIConnectionError):
        return RetryDecision(retry=True, message=f"connection error: {error}")
    if isinstance(error, anthropic.APIStatusError):
        status = error.status_code
        if status in RETRYABLE_STATUS or status >= 500:
            return RetryDecision(
                retry=True,
                retry_after_s=_retry_after(error),
                shared=status in SHARED_STATUS,
                message=f"HTTP {status}: {_error_message(error)}",
            )
    return RetryDecision(retry=False)


def _error_message(error: anthropic.APIStatusError) -> str:
    body = error.body
    if isinstance(body, dict):
        inner = body.get("error")
        if isinstance(inner, dict) and inner.get("message"):
            return f"{inner.get('type', 'error')}: {inner['message']}"
    return error.message


def _usage(message: Any) -> TokenUsage:
    usage = message.usage
    return TokenUsage(
        input_tokens=usage.input_tokens or 0,
        output_tokens=usage.output_tokens or 0,
        cache_creation_input_tokens=getattr(usage, "cache_creation_input_tokens", None) or 0,
        cache_read_input_tokens=getattr(usage, "cache_read_input_tokens", None) or 0,
    )


def _echo_block(block: Any) -> dict[str, Any] | None:
    """An answer block as it must be sent back in the conversation (None: leave it out)."""
    if block.type == "text":
        return {"type": "text", "text": block.text} if block.text else None
    if block.type == "tool_use":
        # A tool input that was not a JSON object cannot be sent back as is.
        tool_input = block.input if isinstance(block.input, dict) else {}
        return {"type": "tool_use", "id": block.id, "name": block.name, "input": tool_input}
    return None


class LlmJudge:
    def __init__(
        self,
        model: str,
        *,
        client: anthropic.Anthropic,
        backoff: SharedBackoff,
        cache: JudgeCache | None,
        pricing: PricingTable,
        max_attempts: int = 3,
        redactor: Redactor | None = None,
        max_tokens: int = DEFAULT_MAX_TOKENS,
        request_timeout_s: float = DEFAULT_REQUEST_TIMEOUT_S,
        unknown_price: Literal["error", "zero"] = "error",
        prompt_cache: bool = True,
        request_hook: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        """`unknown_price="zero"` records cost 0.0 for a model missing from the price table
        (e.g. a fake server's made-up model); the default fails here, before any request.
        `request_hook` may change each request's parameters in place before it is sent
        (the plugin passes the pytest_scylla_judge_request hook)."""
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if unknown_price == "error" and not pricing.knows(model):
            raise UnknownModelPrice(model)
        self.model = model
        self.backoff = backoff
        self.cache = cache
        self.pricing = pricing
        self.max_attempts = max_attempts
        self.max_tokens = max_tokens
        self.prompt_cache = prompt_cache
        self.request_hook = request_hook
        # Our retries only: the SDK's would bypass the shared backoff.
        self._client = client.with_options(max_retries=0, timeout=request_timeout_s)
        # Our own redactor: the client's credentials go into a copy, never into the caller's.
        self.redactor = Redactor(redactor.secrets if redactor else session_redactor().secrets)
        for secret in (client.api_key, getattr(client, "auth_token", None)):
            if isinstance(secret, str):
                self.redactor.add(secret)

    def judge(
        self, judge_input: JudgeInput, items: list[NormalizedItem], out_dir: Path
    ) -> JudgeRecord:
        started = time.monotonic()
        request = build_judge_request(
            judge_input, items, redactor=self.redactor, prompt_cache=self.prompt_cache
        )
        params: dict[str, Any] = {
            "model": self.model,
            "max_tokens": self.max_tokens,
            "system": request.system,
            "messages": request.messages,
            "tools": [request.tool],
            "tool_choice": {"type": "tool", "name": ANSWER_TOOL_NAME},
        }
        if self.request_hook is not None:
            # Before the cache key and prompt.md: both show what is really sent.
            self.request_hook(params)
            request = JudgeRequest(
                system=params["system"], messages=params["messages"], tool=params["tools"][0]
            )
        canonical = canonical_json(params)
        key = request_key(self.model, canonical)
        prompt_sha256 = hashlib.sha256(canonical.encode()).hexdigest()
        model = str(params["model"])
        atomic_write_text(out_dir / PROMPT_FILE, self.redactor(render_prompt(request, model)))
        log = JudgeResponseLog(model=self.model, cache_key=key)

        if self.cache is not None:
            hit = self.cache.get(key)
            if hit is not None:
                hit.latency_s = time.monotonic() - started
                log.cached = True
                return self._finish(out_dir, hit, log)

        record = self._ask(params, items, log)
        record.prompt_sha256 = prompt_sha256
        record.latency_s = time.monotonic() - started
        record.cost_usd = self.pricing.cost_or_none(self.model, record.tokens) or 0.0
        if self.cache is not None:
            self.cache.put(key, record)  # stores ok judgments only
        return self._finish(out_dir, record, log)

    def _ask(
        self, params: dict[str, Any], items: list[NormalizedItem], log: JudgeResponseLog
    ) -> JudgeRecord:
        import anthropic  # loaded already: the client was made with it

        messages = list(params["messages"])
        tokens = TokenUsage()
        last_problem = ""
        for attempt in range(1, self.max_attempts + 1):
            try:
                send = functools.partial(
                    self._client.messages.create, **{**params, "messages": messages}
                )
                message = self.backoff.run(send, classify_api_error)
            except BackoffExhausted as error:
                return self._failed(tokens, attempt - 1, str(error), log)
            except anthropic.AuthenticationError:
                return self._failed(tokens, attempt - 1, "authentication failed", log)
            except anthropic.APIStatusError as error:
                text = f"API request rejected (HTTP {error.status_code}): {_error_message(error)}"
                return self._failed(tokens, attempt - 1, text, log)
            except anthropic.AnthropicError as error:
                text = f"API client error: {error.__class__.__name__}: {error}"
                return self._failed(tokens, attempt - 1, text, log)

            usage = _usage(message)
            tokens = tokens + usage
            entry = AnswerLog(
                attempt=attempt,
                stop_reason=message.stop_reason,
                content=[
                    block.model_dump(mode="json", warnings=False) for block in message.content
                ],
                usage=usage,
            )
            log.answers.append(entry)
            calls = [
                block
                for block in message.content
                if block.type == "tool_use" and block.name == ANSWER_TOOL_NAME
            ]
            try:
                if len(calls) != 1:
                    raise InvalidAnswer(
                        f"call the {ANSWER_TOOL_NAME} tool exactly once (got {len(calls)} calls)"
                    )
                answer = validate_answer(calls[0].input, items)
            except InvalidAnswer as problem:
                last_problem = str(problem)
                entry.validation_error = last_problem
                messages = [*messages, *self._correction(message, calls, last_problem)]
                continue
            return answered_record(
                self.model, answer, self.redactor, tokens=tokens, attempts=attempt
            )
        reason = f"invalid answer after {self.max_attempts} attempts: {last_problem}"
        return self._failed(tokens, self.max_attempts, reason, log, api_error=False)

    @staticmethod
    def _correction(message: Any, calls: list[Any], problem: str) -> list[dict[str, Any]]:
        """The turns that tell the model what was wrong, so its next answer can fix it."""
        echoed = [block for block in map(_echo_block, message.content) if block is not None]
        turns: list[dict[str, Any]] = []
        if echoed:
            turns.append({"role": "assistant", "content": echoed})
        feedback = f"Invalid answer: {problem}. Call {ANSWER_TOOL_NAME} again with a corrected, complete answer."
        tool_ids = [block["id"] for block in echoed if block["type"] == "tool_use"]
        if tool_ids:
            # Every tool_use needs its tool_result in the next user turn.
            content = [
                {
                    "type": "tool_result",
                    "tool_use_id": tool_id,
                    "is_error": True,
                    "content": feedback,
                }
                for tool_id in tool_ids
            ]
        else:
            content = [{"type": "text", "text": feedback}]
        turns.append({"role": "user", "content": content})
        return turns

    def _failed(
        self,
        tokens: TokenUsage,
        attempts: int,
        error: str,
        log: JudgeResponseLog,
        *,
        api_error: bool = True,
    ) -> JudgeRecord:
        error = self.redactor(error)
        if api_error:
            log.api_error = error
        return JudgeRecord(
            model=self.model,
            status="failed",
            error=error,
            tokens=tokens,
            attempts=attempts,
        )

    def _finish(self, out_dir: Path, record: JudgeRecord, log: JudgeResponseLog) -> JudgeRecord:
        return finish_judgment(out_dir, record, log, self.redactor, backend="api")
