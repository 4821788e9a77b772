"""Word-level statistics over plain text."""

from collections import Counter

PUNCTUATION = ".,;:!?\"'()[]"


def words(text):
    """The words of `text`, lower-cased, with surrounding punctuation removed."""
    result = []
    for token in text.split():
        word = token.strip(PUNCTUATION).lower()
        if word:
            result.append(word)
    return result


def word_count(text):
    """The number of words in `text`."""
    return len(words(text))


def longest_word(text):
    """The longest word in `text` (the first one on a tie), or "" for no words."""
    best = ""
    for word in words(text):
        if len(word) > len(best):
            best = word
    return best


def average_word_length(text):
    """The mean length of the words in `text`, or 0.0 for no words."""
    found = words(text)
    if not found:
        return 0.0
    return sum(len(word) for word in found) / len(found)


def top_words(text, n):
    """The `n` most frequent words as (word, count) pairs, most frequent first.

    Ties are broken alphabetically so the result does not depend on word order.
    """
    counts = Counter(words(text))
    ranked = sorted(counts.items(), key=lambda pair: (-pair[1], pair[0]))
    return ranked[:n]


def ngrams(text, n):
    """Every run of `n` consecutive words in `text`, as tuples, in order."""
    if n < 1:
        raise ValueError("n must be at least 1")
    found = words(text)
    return [tuple(found[i : i + n]) for i in range(len(found) - n)]
