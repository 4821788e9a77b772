"""The CLI judge backend (issue 13): time and memory of one judgment through the real CLI.

Run: `python benchmarks/bench_cli_judge.py [--judgments 5]`. Starts the fake Messages API
(it answers every request with a valid StructuredOutput call), gives a CliJudge an OAuth
token and judges the same small run N times (each with another diff, so nothing is
cached). Prints one JSON line: seconds per judgment (each is one CLI process), the tokens
one judgment reported (the judge's own system prompt replaces Claude Code's, about 7,000
tokens), and the peak RSS of one CLI process.

Seen on the 2-core test machine (CLI 2.1.332): 0.9-2.4 s per judgment, about 1,200 prompt
tokens, about 200 MB peak RSS per CLI process (four judges in a panel: four at once).
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

from pytest_scylla.credentials import claude_code_credentials
from pytest_scylla.judges.cli_judge import STRUCTURED_OUTPUT_TOOL, CliJudge
from pytest_scylla.judges.prompt import JudgeInput
from pytest_scylla.pricing import PricingTable
from pytest_scylla.records import ChecksRecord
from pytest_scylla.spec.rubric import Rubric
from pytest_scylla.testing.fake_api import FakeMessagesAPI, Reply, ToolCall

TOKEN = "sk-ant-oat01-benchmark-token-0123456789"
RUBRIC = {
    "categories": {
        "functional": {
            "weight": 1.0,
            "items": [
                {"id": "F1", "check": "hello.py prints Hello, World!", "points": 2},
                {"id": "Q1", "check": "no unused imports", "points": 1},
            ],
        }
    }
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--judgments", type=int, default=5)
    args = parser.parse_args()
    rubric = Rubric.model_validate(RUBRIC).normalized()
    items = list(rubric.items())
    reply = Reply(
        tool_calls=[
            ToolCall(
                name=STRUCTURED_OUTPUT_TOOL,
                input={
                    "items": [
                        {"item_id": "F1", "achieved": 2, "reason": "prints it"},
                        {"item_id": "Q1", "achieved": 1, "reason": "none"},
                    ],
                    "overall_reasoning": "fine",
                },
            )
        ]
    )
    credentials = claude_code_credentials({"CLAUDE_CODE_OAUTH_TOKEN": TOKEN})
    assert credentials is not None
    seconds: list[float] = []
    with FakeMessagesAPI(lambda request: reply, api_key=TOKEN) as api:
        judge = CliJudge(
            "claude-opus-4-6",
            credentials=credentials,
            pricing=PricingTable.load(),
            environ={"ANTHROPIC_BASE_URL": api.base_url, "CLAUDE_CODE_MAX_RETRIES": "0"},
        )
        for number in range(args.judgments):
            judge_input = JudgeInput(
                task_prompt="Create hello.py that prints Hello, World!",
                criteria="prints exactly Hello, World!",
                rubric=rubric,
                rubric_text=json.dumps(RUBRIC),
                diff=f"+print('Hello, World!')  # {number}\n",
                checks=ChecksRecord(),
            )
            started = time.monotonic()
            with tempfile.TemporaryDirectory() as out:
                record = judge.judge(judge_input, items, Path(out))
            seconds.append(round(time.monotonic() - started, 3))
            if record.status != "ok":
                sys.exit(f"judgment failed: {record.error}")
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    print(
        json.dumps(
            {
                "judgments": args.judgments,
                "seconds": seconds,
                "tokens_per_judgment": record.tokens.model_dump(),
                "cli_peak_rss_mb": round(children.ru_maxrss / 1024, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
