"""Git's ignore rules (`.gitignore`), matched in Python.

The harness never lets git walk a workspace the agent wrote (git would open its FIFOs, read
its huge files and follow its nested `.git` files), so it decides itself which files git
would ignore. This follows gitignore(5) and git's wildmatch: the last matching pattern wins,
a deeper `.gitignore` beats a shallower one, a trailing `/` matches folders only, a pattern
with a slash is anchored to its file's folder, `**` spans folders only between slashes, and
nothing inside an ignored folder can be re-included. `tests/test_gitignore.py` pins it
against `git check-ignore`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

_NEVER = "(?!)"
_CLASSES = {
    "alnum": "a-zA-Z0-9",
    "alpha": "a-zA-Z",
    "blank": " \\t",
    "cntrl": "\\x00-\\x1f\\x7f",
    "digit": "0-9",
    "graph": "\\x21-\\x7e",
    "lower": "a-z",
    "print": "\\x20-\\x7e",
    "punct": re.escape("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"),
    "space": " \\t\\n\\r\\f\\v",
    "upper": "A-Z",
    "xdigit": "0-9a-fA-F",
}


@dataclass(frozen=True)
class IgnorePattern:
    regex: re.Pattern[str]
    negative: bool
    dir_only: bool
    anchored: bool  # had a slash: matched against the path below `base`
    base: str  # folder of the .gitignore: "" at the top, else "a/b/"


def _bracket(pattern: str, start: int) -> tuple[str, int] | None:
    """The regex of the bracket expression at pattern[start] == '[', and where it ends."""
    i = start + 1
    negated = i < len(pattern) and pattern[i] in "!^"
    if negated:
        i += 1
    parts: list[str] = []
    first = True
    while i < len(pattern):
        char = pattern[i]
        if char == "]" and not first:
            body = "".join(parts)
            # Under git's pathname matching a bracket never matches a slash.
            return (f"[^/{body}]" if negated else f"(?!/)[{body}]"), i + 1
        first = False
        if char == "[" and pattern.startswith("[:", i):
            end = pattern.find(":]", i + 2)
            if end < 0:
                return None
            name = pattern[i + 2 : end]
            if name not in _CLASSES:
                return None
            parts.append(_CLASSES[name])
            i = end + 2
            continue
        if char == "\\":
            i += 1
            if i >= len(pattern):
                return None
            char = pattern[i]
        if i + 2 < len(pattern) and pattern[i + 1] == "-" and pattern[i + 2] != "]":
            high = pattern[i + 2]
            if high == "\\":
                if i + 3 >= len(pattern):
                    return None
                high = pattern[i + 3]
                i += 1
            if high >= char:
                parts.append(f"{re.escape(char)}-{re.escape(high)}")
            i += 3
            continue
        parts.append(re.escape(char))
        i += 1
    return None  # no closing bracket: git's wildmatch gives up, nothing matches


def translate(pattern: str) -> str:
    """A regex for git's wildmatch of `pattern` with WM_PATHNAME (full match expected)."""
    out: list[str] = []
    i, length = 0, len(pattern)
    while i < length:
        char = pattern[i]
        if char == "*":
            end = i
            while end < length and pattern[end] == "*":
                end += 1
            bounded = (i == 0 or pattern[i - 1] == "/") and (end == length or pattern[end] == "/")
            if end - i >= 2 and bounded:
                if end == length:
                    out.append(".*")
                else:
                    out.append("(?:.*/)?")  # "**/" matches zero or more folders
                    end += 1
            else:
                out.append("[^/]*")
            i = end
            continue
        if char == "?":
            out.append("[^/]")
        elif char == "[":
            bracket = _bracket(pattern, i)
            if bracket is None:
                return _NEVER
            regex, i = bracket
            out.append(regex)
            continue
        elif char == "\\":
            if i + 1 >= length:
                return _NEVER
            out.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        else:
            out.append(re.escape(char))
        i += 1
    return "".join(out)


def _trim_trailing_spaces(line: str) -> str:
    end = len(line)
    while end and line[end - 1] == " ":
        # An escaped space ("\ ") stays, and ends the trimming.
        backslashes = 0
        while end - 1 - backslashes - 1 >= 0 and line[end - 2 - backslashes] == "\\":
            backslashes += 1
        if backslashes % 2:
            break
        end -= 1
    return line[:end]


def parse_ignore_file(text: str, base: str) -> list[IgnorePattern]:
    """The patterns of one `.gitignore` whose folder is `base` ("" or "a/b/")."""
    patterns: list[IgnorePattern] = []
    for raw in text.split("\n"):
        line = _trim_trailing_spaces(raw)
        if not line or line.startswith("#"):
            continue
        negative = line.startswith("!")
        if negative:
            line = line[1:]
        dir_only = line.endswith("/")
        if dir_only:
            line = line[:-1]
        anchored = "/" in line
        if line.startswith("/"):
            line = line[1:]
        if not line:
            continue
        patterns.append(
            IgnorePattern(
                regex=re.compile(translate(line), re.DOTALL),
                negative=negative,
                dir_only=dir_only,
                anchored=anchored,
                base=base,
            )
        )
    return patterns


def is_ignored(patterns: Sequence[IgnorePattern], path: str, *, is_dir: bool) -> bool:
    """Whether `path` (relative to the top, "/"-separated) is ignored by its own name.

    `patterns` are those of the path's folder and every folder above it, shallowest first;
    the caller handles ignored parent folders (it does not walk into them).
    """
    name = path.rsplit("/", 1)[-1]
    for pattern in reversed(patterns):
        if pattern.dir_only and not is_dir:
            continue
        if pattern.anchored:
            if not path.startswith(pattern.base):
                continue
            subject = path[len(pattern.base) :]
        else:
            subject = name
        if pattern.regex.fullmatch(subject):
            return not pattern.negative
    return False
