#!/usr/bin/env bash
# Oracle solution for test-003: run with the workspace as the current directory.
set -euo pipefail

cat >> linetool/core.py <<'PY'


def reverse_lines(lines):
    """The lines in reverse order, as a new list."""
    return list(reversed(lines))
PY

cat > linetool/__init__.py <<'PY'
"""A tiny filter for lines of text."""

from linetool.core import number_lines, reverse_lines, skip_blank, upper_lines

__all__ = ["number_lines", "reverse_lines", "skip_blank", "upper_lines"]
PY

python3 -B - <<'PY'
from pathlib import Path

cli = Path("linetool/cli.py")
text = cli.read_text()
replacements = [
    (
        "from linetool.core import number_lines, skip_blank, upper_lines",
        "from linetool.core import number_lines, reverse_lines, skip_blank, upper_lines",
    ),
    (
        "    return parser\n",
        '    parser.add_argument(\n'
        '        "--reverse", action="store_true", help="print lines last to first"\n'
        "    )\n"
        "    return parser\n",
    ),
    (
        "    if args.upper:\n",
        "    if args.reverse:\n        lines = reverse_lines(lines)\n    if args.upper:\n",
    ),
]
for old, new in replacements:
    assert text.count(old) == 1, old
    text = text.replace(old, new)
cli.write_text(text)

readme = Path("README.md")
text = readme.read_text()
old = "- `--skip-blank`: drop lines that are empty or only whitespace.\n"
assert text.count(old) == 1
text = text.replace(
    old,
    old + "- `--reverse`: print the lines last to first (after `--skip-blank`, before\n"
    "  `--number`, so numbers follow the printed order).\n",
)
readme.write_text(text)
PY

cat > tests/test_reverse.py <<'PY'
import io
import unittest

from linetool.cli import main
from linetool.core import reverse_lines


def run(argv, text):
    out = io.StringIO()
    code = main(argv, stdin=io.StringIO(text), stdout=out)
    return code, out.getvalue()


class ReverseLinesTest(unittest.TestCase):
    def test_reverses_order(self):
        self.assertEqual(reverse_lines(["a", "b", "c"]), ["c", "b", "a"])

    def test_does_not_modify_argument(self):
        lines = ["a", "b"]
        reverse_lines(lines)
        self.assertEqual(lines, ["a", "b"])

    def test_empty(self):
        self.assertEqual(reverse_lines([]), [])


class ReverseOptionTest(unittest.TestCase):
    def test_reverse(self):
        self.assertEqual(run(["--reverse"], "a\nb\nc\n"), (0, "c\nb\na\n"))

    def test_numbers_follow_printed_order(self):
        self.assertEqual(run(["--reverse", "--number"], "a\nb\n"), (0, "1: b\n2: a\n"))

    def test_blank_lines_dropped_before_reversing(self):
        self.assertEqual(run(["--reverse", "--skip-blank"], "a\n\nb\n"), (0, "b\na\n"))


if __name__ == "__main__":
    unittest.main()
PY
