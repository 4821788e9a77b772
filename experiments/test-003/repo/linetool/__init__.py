"""A tiny filter for lines of text."""

from linetool.core import number_lines, skip_blank, upper_lines

__all__ = ["number_lines", "skip_blank", "upper_lines"]
