"""Redaction throughput: the Redactor over an agent's stream-json output, clean and full of
secret-shaped text, and the StreamRedactor writing it line by line as an agent would.

Clean text holds none of the marker words (authorization, bearer, x-api-key, KEY= ...), so
only the plain replacement of known secrets and the sk-ant- shape run; the worst case holds
a marker on every line and runs every pattern.

    python benchmarks/bench_redact.py [--mb 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import io
import json
import time
from collections.abc import Callable

from pytest_scylla.redact import Redactor, StreamRedactor

SECRETS = ["sk-ant-test-0123456789abcdef", "hunter2hunter2", "ghp_abcdefghijklmnopqrstuvwxyz0123"]


def stream_line(text: str) -> str:
    event = {
        "type": "assistant",
        "message": {
            "content": [{"type": "text", "text": text}],
            "usage": {"input_tokens": 123, "output_tokens": 45},
        },
    }
    return json.dumps(event) + "\n"


CLEAN = stream_line("Let me look at src/main.py and run the tests with pytest -q. " * 6)
MARKED = stream_line(
    'curl -H "x-api-key: abc123" -H "Authorization: Bearer tok_abcdefgh" && '
    "export GITHUB_TOKEN=ghp_x DB_PASSWORD='p w' && echo {'api_key': 'v'} " * 2
)


def throughput(label: str, text: str, run: Callable[[str], object], repeat: int) -> dict:
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        run(text)
        best = min(best, time.perf_counter() - started)
    megabytes = len(text.encode()) / 1e6
    return {
        "case": label,
        "mb": round(megabytes, 2),
        "s": round(best, 4),
        "mb_per_s": round(megabytes / best, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mb", type=float, default=3.0)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json", dest="json_out")
    options = parser.parse_args()
    redactor = Redactor(SECRETS)

    def streamed(text: str) -> None:
        sink = io.BytesIO()
        stream = StreamRedactor(redactor, sink)
        for line in text.splitlines(keepends=True):
            stream.write(line.encode())
        stream.close()

    rows = []
    for label, line in (("clean", CLEAN), ("every line marked", MARKED)):
        text = line * max(1, int(options.mb * 1e6 / len(line)))
        rows.append(throughput(f"Redactor, {label}", text, redactor, options.repeat))
        rows.append(throughput(f"StreamRedactor per line, {label}", text, streamed, options.repeat))
    for row in rows:
        print(
            f"{row['case']:<40} {row['mb']:>6.2f} MB  {row['s'] * 1000:>8.1f} ms  {row['mb_per_s']:>7.1f} MB/s"
        )
    if options.json_out:
        with open(options.json_out, "w", encoding="utf-8") as handle:
            json.dump(rows, handle, indent=2)


if __name__ == "__main__":
    main()
