"""What a judge model is shown, and the shape of the answer it must give.

The request is split for Anthropic's prompt cache: everything that is the same for every run
of one experiment (instructions, rubric, criteria, task, the answer tool) comes first and
ends with a `cache_control` breakpoint; what differs per run (diff, files, check results)
comes after it. Judging 10 runs x N sub-tests of one experiment then pays the stable part
once per cache lifetime instead of once per run.

Everything shown to the model passes through a Redactor: the diff or a check's output may
contain a key the agent printed.
"""

from __future__ import annotations

import json
from typing import Any, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, field_validator

from pytest_scylla.judges.checks import OUTPUT_TAIL_CHARS
from pytest_scylla.records import CheckResult, ChecksRecord
from pytest_scylla.redact import Redactor
from pytest_scylla.spec.rubric import NormalizedItem, NormalizedRubric

ANSWER_TOOL_NAME = "submit_judgment"
# About 25k tokens: enough for any task our fixtures pose, small enough to leave room for the
# rest of the prompt in every judge model's context.
DIFF_LIMIT_CHARS = 100_000
DIFF_TAIL_CHARS = 10_000  # the end of a diff often holds the last (new) files: keep some
FILE_LIST_LIMIT = 2_000


def truncate_diff(diff: str, limit: int = DIFF_LIMIT_CHARS) -> str:
    """Head and tail of an over-long diff, with a marker saying how much was left out."""
    if len(diff) <= limit:
        return diff
    tail = min(DIFF_TAIL_CHARS, limit // 4)
    head = limit - tail
    omitted = len(diff) - head - tail
    return (
        diff[:head]
        + f"\n[... diff truncated: {omitted} characters omitted of {len(diff)} ...]\n"
        + diff[len(diff) - tail :]
    )


class JudgeInput(BaseModel):
    """Everything a judge sees about one run; built by the runner from the run's records."""

    task_prompt: str
    criteria: str
    rubric: NormalizedRubric
    rubric_text: str  # the rubric YAML as the fixture author wrote it
    diff: str  # truncated on construction above DIFF_LIMIT_CHARS
    files: list[str] = Field(default_factory=list)
    checks: ChecksRecord = ChecksRecord()
    # Which run this is: every run gets its own judgment, and the judge cache only reuses a
    # judgment for the same run, never one run's for another with identical evidence.
    run_label: str = ""

    @field_validator("diff")
    @classmethod
    def _truncate(cls, value: str) -> str:
        return truncate_diff(value)


class ItemAnswer(BaseModel):
    """One rubric item in the judge's answer."""

    model_config = ConfigDict(extra="forbid")

    item_id: str = Field(description="The rubric item id, exactly as listed.")
    achieved: float | None = Field(
        description=(
            "Points achieved, from 0 to the item's maximum. Binary items: 0 or the maximum. "
            "null only when the item has an N/A condition and that condition holds."
        )
    )
    reason: str = Field(description="One or two sentences of evidence for the points.")


class JudgeAnswer(BaseModel):
    """The answer tool's input: the schema the model is forced to fill."""

    model_config = ConfigDict(extra="forbid")

    items: list[ItemAnswer] = Field(description="Exactly one entry per rubric item to judge.")
    overall_reasoning: str = Field(description="A short overall assessment of the run.")


def answer_tool() -> dict[str, Any]:
    """The tool definition; static, so it is part of the cached prefix (tools come first)."""
    return {
        "name": ANSWER_TOOL_NAME,
        "description": (
            "Submit your judgment of the agent's run: points for every listed rubric item, "
            "each with a short reason, and an overall assessment."
        ),
        "input_schema": JudgeAnswer.model_json_schema(),
    }


class JudgeRequest(NamedTuple):
    system: list[dict[str, Any]]
    messages: list[dict[str, Any]]
    tool: dict[str, Any]


INSTRUCTIONS = """\
You are a strict, fair grader of an AI coding agent's work. You receive the task the agent
was given, the success criteria, the grading rubric, and then the evidence of one run: the
diff of the workspace, the files present afterwards, and the results of the build/test
checks run before the agent started (baseline) and after it finished.

Grade only the rubric items listed under "Items to judge". For each one:
- award points between 0 and its maximum, based on the evidence, not on the agent's claims;
- items marked binary get either 0 or the full points;
- answer null (N/A) only for an item that has an N/A condition, and only when it holds;
- a failing check that already failed in the baseline is not the agent's regression.
Items scored by commands are listed with their results for context; do not grade them.
Answer only by calling the submit_judgment tool, once, with every listed item exactly once.
Your points are the only thing used: the score is computed from them, not asked of you."""


def _item_line(item: NormalizedItem) -> str:
    kind = "binary, 0 or full" if item.binary else "scaled"
    line = f"- `{item.id}` (max {item.points:g} points, {kind}): {item.check}"
    if item.na_condition:
        line += f"\n  N/A condition: {item.na_condition}"
    return line


def _stable_text(judge_input: JudgeInput, items: list[NormalizedItem]) -> str:
    command_items = [item for item in judge_input.rubric.items() if item.command]
    parts = [
        "# Task given to the agent\n\n" + judge_input.task_prompt.strip(),
        "# Success criteria\n\n" + judge_input.criteria.strip(),
        "# Rubric (as written)\n\n```yaml\n" + judge_input.rubric_text.strip() + "\n```",
        "# Items to judge\n\n" + "\n".join(_item_line(item) for item in items),
    ]
    if command_items:
        parts.append(
            "# Items scored by commands (not yours to grade)\n\n"
            + "\n".join(f"- `{item.id}`: {item.check}" for item in command_items)
        )
    return "\n\n".join(parts)


def _check_line(check: CheckResult) -> str:
    if check.timed_out:
        status = "TIMED OUT"
    else:
        status = "passed" if check.passed else f"FAILED (exit {check.exit_code})"
    line = f"- {check.name}: {status} - `{check.command}`"
    tail = check.output_tail.strip()
    if tail and not check.passed:
        tail = tail[-OUTPUT_TAIL_CHARS:]
        line += "\n  ```\n  " + tail.replace("\n", "\n  ") + "\n  ```"
    return line


def _checks_text(title: str, checks: list[CheckResult]) -> str:
    body = "\n".join(_check_line(check) for check in checks) if checks else "(none run)"
    return f"## {title}\n\n{body}"


def _run_text(judge_input: JudgeInput) -> str:
    checks = judge_input.checks
    files = judge_input.files[:FILE_LIST_LIMIT]
    more = len(judge_input.files) - len(files)
    file_text = "\n".join(files) if files else "(no files)"
    if more > 0:
        file_text += f"\n[... {more} more files not listed ...]"
    command_lines = [
        f"- `{item_id}`: {'passed (full points)' if result.passed else 'failed (0 points)'}"
        for item_id, result in sorted(checks.rubric_commands.items())
    ]
    parts = [
        "# Evidence from this run"
        + (f" ({judge_input.run_label})" if judge_input.run_label else ""),
        "## Workspace diff\n\n```diff\n" + (judge_input.diff or "(empty diff)") + "\n```",
        "## Files in the workspace afterwards\n\n```\n" + file_text + "\n```",
        _checks_text("Checks before the agent ran (baseline)", checks.baseline),
        _checks_text("Checks after the agent finished", checks.after),
    ]
    if command_lines:
        parts.append("## Command-scored rubric items\n\n" + "\n".join(command_lines))
    parts.append("Grade the items to judge now, through the submit_judgment tool.")
    return "\n\n".join(parts)


def build_judge_request(
    judge_input: JudgeInput,
    items_to_judge: list[NormalizedItem],
    *,
    redactor: Redactor | None = None,
    prompt_cache: bool = True,
) -> JudgeRequest:
    """(system blocks, messages, tool) for one judgment; deterministic for equal inputs.

    Deterministic matters twice: the prompt cache matches byte-identical prefixes, and the
    judge cache keys on the request JSON. `prompt_cache=False` leaves out the breakpoint
    (for endpoints that reject `cache_control`, and to measure what the cache saves).
    """
    redact = redactor or Redactor()
    stable: dict[str, Any] = {
        "type": "text",
        "text": redact(_stable_text(judge_input, items_to_judge)),
    }
    if prompt_cache:
        stable["cache_control"] = {"type": "ephemeral"}
    system = [{"type": "text", "text": INSTRUCTIONS}, stable]
    messages = [
        {"role": "user", "content": [{"type": "text", "text": redact(_run_text(judge_input))}]}
    ]
    return JudgeRequest(system=system, messages=messages, tool=answer_tool())


def render_prompt(request: JudgeRequest, model: str) -> str:
    """prompt.md: the request as a person reads it (already redacted by the builder)."""
    lines = [f"# Judge prompt for {model}", ""]
    for block in request.system:
        cached = " (cache breakpoint)" if "cache_control" in block else ""
        lines += [f"## system{cached}", "", block["text"], ""]
    for message in request.messages:
        for block in message["content"]:
            if block.get("type") == "text":
                lines += [f"## {message['role']}", "", block["text"], ""]
    lines += [
        f"## answer tool `{request.tool['name']}` (forced)",
        "",
        "```json",
        json.dumps(request.tool["input_schema"], indent=2),
        "```",
        "",
    ]
    return "\n".join(lines)
