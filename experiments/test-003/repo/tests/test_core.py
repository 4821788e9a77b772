import unittest

from linetool.core import number_lines, skip_blank, upper_lines


class UpperLinesTest(unittest.TestCase):
    def test_upper_cases_every_line(self):
        self.assertEqual(upper_lines(["ab", "Cd"]), ["AB", "CD"])


class SkipBlankTest(unittest.TestCase):
    def test_drops_empty_and_whitespace_lines(self):
        self.assertEqual(skip_blank(["a", "", "  ", "b"]), ["a", "b"])


class NumberLinesTest(unittest.TestCase):
    def test_numbers_from_one(self):
        self.assertEqual(number_lines(["x", "y"]), ["1: x", "2: y"])

    def test_custom_start(self):
        self.assertEqual(number_lines(["x"], start=5), ["5: x"])

    def test_empty(self):
        self.assertEqual(number_lines([]), [])


if __name__ == "__main__":
    unittest.main()
