import unittest

from textstats import (
    average_word_length,
    longest_word,
    ngrams,
    top_words,
    word_count,
    words,
)


class WordsTest(unittest.TestCase):
    def test_strips_punctuation_and_lowercases(self):
        self.assertEqual(words("Hello, world! (Hello)"), ["hello", "world", "hello"])

    def test_empty_text(self):
        self.assertEqual(words("   "), [])


class WordCountTest(unittest.TestCase):
    def test_counts_words(self):
        self.assertEqual(word_count("the cat sat on the mat"), 6)

    def test_punctuation_only_tokens_are_not_words(self):
        self.assertEqual(word_count("wait ... what ?"), 2)


class LongestWordTest(unittest.TestCase):
    def test_first_longest_wins(self):
        self.assertEqual(longest_word("red green blue white"), "green")

    def test_no_words(self):
        self.assertEqual(longest_word(""), "")


class AverageWordLengthTest(unittest.TestCase):
    def test_mean_length(self):
        self.assertAlmostEqual(average_word_length("ab abcd"), 3.0)

    def test_no_words(self):
        self.assertEqual(average_word_length(""), 0.0)


class TopWordsTest(unittest.TestCase):
    def test_most_frequent_first_ties_alphabetical(self):
        text = "b a b c a b"
        self.assertEqual(top_words(text, 2), [("b", 3), ("a", 2)])

    def test_n_larger_than_vocabulary(self):
        self.assertEqual(top_words("x y", 5), [("x", 1), ("y", 1)])


class NgramsTest(unittest.TestCase):
    def test_bigrams(self):
        self.assertEqual(
            ngrams("the cat sat down", 2),
            [("the", "cat"), ("cat", "sat"), ("sat", "down")],
        )

    def test_n_equal_to_length_gives_one_ngram(self):
        self.assertEqual(ngrams("one two three", 3), [("one", "two", "three")])

    def test_unigrams_are_the_words(self):
        self.assertEqual(ngrams("a b", 1), [("a",), ("b",)])

    def test_too_short_text(self):
        self.assertEqual(ngrams("alone", 2), [])

    def test_n_must_be_positive(self):
        with self.assertRaises(ValueError):
            ngrams("a b", 0)


if __name__ == "__main__":
    unittest.main()
