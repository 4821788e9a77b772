"""Judge requests and tokens per run, with and without the prompt cache, from the fake API.

Judges RUNS runs of one experiment with a panel, the real anthropic SDK talking to the fake
Messages API on 127.0.0.1 (its usage honours cache_control the way the API does; token
counts are its ~4 characters/token estimate, not a real tokenizer). One answer in
INVALID_EVERY is scripted invalid first, so the retry cost shows too. Then the same runs are
judged again with the judge cache on: that pass must make no request at all.

    python benchmarks/bench_judge.py [--runs 10] [--json out.json]

Uses upstream's dry-run fixture (test-001) when present, else a built-in one. Note: the real
API caches only prefixes of at least 1024 tokens (2048 for Haiku); the fake caches any.
"""

from __future__ import annotations

import argparse
import itertools
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import anthropic
import yaml
from pydantic import BaseModel

from pytest_scylla.judges.backoff import SharedBackoff
from pytest_scylla.judges.cache import JudgeCache
from pytest_scylla.judges.llm import LlmJudge
from pytest_scylla.judges.panel import JudgePanel
from pytest_scylla.judges.prompt import ANSWER_TOOL_NAME, JudgeInput
from pytest_scylla.pricing import PricingTable
from pytest_scylla.records import CheckResult, ChecksRecord, JudgeRecord, TokenUsage, sum_usage
from pytest_scylla.spec.rubric import NormalizedItem, Rubric
from pytest_scylla.testing.fake_api import FakeMessagesAPI, RecordedRequest, Reply, ToolCall

# ../shared beside the checkout, where every developer and CI machine has it
UPSTREAM = Path(__file__).resolve().parents[2] / "shared" / "data" / "upstream" / "dryrun-test-001"
PANEL = ["claude-sonnet-4-6", "claude-haiku-4-5", "claude-opus-4-6"]
INVALID_EVERY = 5  # every 5th first answer is invalid (a missing item)
FALLBACK_RUBRIC = """\
categories:
  functional:
    weight: 0.7
    items:
      - {id: F1, check: "hello.py exists", points: 1}
      - {id: F2, check: "prints Hello, World!", points: 1}
  quality:
    weight: 0.3
    items:
      - {id: Q1, check: "idiomatic", points: 1}
"""


class Variant(BaseModel):
    name: str
    runs: int
    judges: int
    requests: int
    requests_per_run: float
    tokens_per_run: TokenUsage
    total_tokens_per_run: float
    cost_usd_per_run: float
    seconds: float


def fixture() -> tuple[str, str, str]:
    if UPSTREAM.is_dir():
        return (
            (UPSTREAM / "prompt.md").read_text(encoding="utf-8"),
            (UPSTREAM / "criteria.md").read_text(encoding="utf-8"),
            (UPSTREAM / "rubric.yaml").read_text(encoding="utf-8"),
        )
    return "Create hello.py printing Hello, World!", "R001: prints it.", FALLBACK_RUBRIC


def make_inputs(runs: int) -> tuple[list[JudgeInput], list[NormalizedItem]]:
    prompt, criteria, rubric_text = fixture()
    rubric = Rubric.model_validate(yaml.safe_load(rubric_text)).normalized()
    items = [item for item in rubric.items() if not item.command]
    inputs = [
        JudgeInput(
            task_prompt=prompt,
            criteria=criteria,
            rubric=rubric,
            rubric_text=rubric_text,
            # A small, different diff per run: the run-specific part of the prompt.
            diff=(
                "diff --git a/hello.py b/hello.py\nnew file mode 100644\n--- /dev/null\n"
                f"+++ b/hello.py\n@@ -0,0 +1,3 @@\n+# run {run}\n+def main() -> None:\n"
                "+    print('Hello, World!')\n" + "+# padding line\n" * (20 + run)
            ),
            files=["hello.py", "README.md"],
            checks=ChecksRecord(
                after=[CheckResult(name="python_test", command="pytest -q", exit_code=0)]
            ),
        )
        for run in range(runs)
    ]
    return inputs, items


def responder(items: list[NormalizedItem]) -> Any:
    first_answers = itertools.count()  # the server answers in threads: count atomically

    def reply(request: RecordedRequest) -> Reply:
        first_turn = len(request.body["messages"]) == 1
        count = next(first_answers) if first_turn else 0
        payload = {
            "items": [
                {"item_id": item.id, "achieved": item.points, "reason": "met"} for item in items
            ],
            "overall_reasoning": "The run meets the rubric.",
        }
        if first_turn and count % INVALID_EVERY == INVALID_EVERY - 1:
            payload["items"] = payload["items"][1:]
        return Reply(tool_calls=[ToolCall(name=ANSWER_TOOL_NAME, input=payload)])

    return reply


def judge_all(
    fake: FakeMessagesAPI,
    work: Path,
    name: str,
    inputs: list[JudgeInput],
    items: list[NormalizedItem],
    *,
    prompt_cache: bool,
    cache: JudgeCache | None,
) -> Variant:
    fake.clear()
    pricing = PricingTable.load()
    client = anthropic.Anthropic(api_key="bench-key-not-secret", base_url=fake.base_url)
    backoff = SharedBackoff(work / "backoff.json", base_s=0.01, cap_s=0.05)

    def factory(model: str) -> LlmJudge:
        return LlmJudge(
            model,
            client=client,
            backoff=backoff,
            cache=cache,
            pricing=pricing,
            prompt_cache=prompt_cache,
        )

    panel = JudgePanel(PANEL, factory)
    records: list[JudgeRecord] = []
    started = time.monotonic()
    for index, judge_input in enumerate(inputs):
        out = work / name / f"run-{index:02d}" / "judges"
        records += panel.run(judge_input, items, out, [])
    seconds = time.monotonic() - started
    assert all(record.status == "ok" for record in records), [r.error for r in records]
    fresh = [record for record in records if not record.cached]
    tokens = sum_usage([record.tokens for record in fresh])
    runs = len(inputs)
    requests = len(fake.message_requests())
    return Variant(
        name=name,
        runs=runs,
        judges=len(PANEL),
        requests=requests,
        requests_per_run=requests / runs,
        tokens_per_run=TokenUsage(
            input_tokens=tokens.input_tokens // runs,
            output_tokens=tokens.output_tokens // runs,
            cache_creation_input_tokens=tokens.cache_creation_input_tokens // runs,
            cache_read_input_tokens=tokens.cache_read_input_tokens // runs,
        ),
        total_tokens_per_run=tokens.total / runs,
        cost_usd_per_run=sum(record.cost_usd for record in fresh) / runs,
        seconds=seconds,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    inputs, items = make_inputs(args.runs)
    results: list[Variant] = []
    with tempfile.TemporaryDirectory() as temp, FakeMessagesAPI() as fake:
        work = Path(temp)
        fake.set_replies(responder(items))
        results.append(
            judge_all(fake, work, "no prompt cache", inputs, items, prompt_cache=False, cache=None)
        )
        fake.cache.clear()
        fake.set_replies(responder(items))
        judge_cache = JudgeCache(work / "judge-cache")
        results.append(
            judge_all(
                fake, work, "prompt cache", inputs, items, prompt_cache=True, cache=judge_cache
            )
        )
        results.append(
            judge_all(
                fake, work, "judge cache (re-judge)", inputs, items, prompt_cache=True,
                cache=judge_cache,
            )
        )  # fmt: skip
    header = (
        f"{'variant':<24} {'req/run':>8} {'input':>7} {'c.write':>8} {'c.read':>8} "
        f"{'output':>7} {'tok/run':>8} {'USD/run':>9}"
    )
    print(f"panel {PANEL}, {args.runs} runs, judged items per run: {len(items)}")
    print(header)
    for row in results:
        t = row.tokens_per_run
        print(
            f"{row.name:<24} {row.requests_per_run:>8.2f} {t.input_tokens:>7} "
            f"{t.cache_creation_input_tokens:>8} {t.cache_read_input_tokens:>8} "
            f"{t.output_tokens:>7} {row.total_tokens_per_run:>8.0f} {row.cost_usd_per_run:>9.5f}"
        )
    if args.json:
        args.json.write_text(
            json.dumps([row.model_dump() for row in results], indent=2) + "\n", encoding="utf-8"
        )


if __name__ == "__main__":
    main()
