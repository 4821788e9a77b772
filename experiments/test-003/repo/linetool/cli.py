"""Command-line entry point: python3 -m linetool [options] < input"""

import argparse
import sys

from linetool.core import number_lines, skip_blank, upper_lines


def build_parser():
    parser = argparse.ArgumentParser(
        prog="linetool", description="Filter lines of text from standard input."
    )
    parser.add_argument("--upper", action="store_true", help="print lines in upper case")
    parser.add_argument(
        "--number", action="store_true", help="prefix lines with their output position"
    )
    parser.add_argument(
        "--skip-blank", action="store_true", help="drop empty and whitespace-only lines"
    )
    return parser


def transform(lines, args):
    """Apply the selected options to the lines, in a fixed order."""
    if args.skip_blank:
        lines = skip_blank(lines)
    if args.upper:
        lines = upper_lines(lines)
    if args.number:
        lines = number_lines(lines)
    return lines


def main(argv=None, stdin=None, stdout=None):
    args = build_parser().parse_args(argv)
    stdin = stdin if stdin is not None else sys.stdin
    stdout = stdout if stdout is not None else sys.stdout
    lines = stdin.read().splitlines()
    for line in transform(lines, args):
        stdout.write(line + "\n")
    return 0
