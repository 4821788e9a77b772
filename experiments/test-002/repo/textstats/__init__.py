"""Small helpers for counting things in plain text."""

from textstats.core import (
    average_word_length,
    longest_word,
    ngrams,
    top_words,
    word_count,
    words,
)

__all__ = [
    "average_word_length",
    "longest_word",
    "ngrams",
    "top_words",
    "word_count",
    "words",
]
