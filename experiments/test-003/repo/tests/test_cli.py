import io
import unittest

from linetool.cli import main


def run(argv, text):
    out = io.StringIO()
    code = main(argv, stdin=io.StringIO(text), stdout=out)
    return code, out.getvalue()


class CliTest(unittest.TestCase):
    def test_no_options_copies_input(self):
        self.assertEqual(run([], "a\nb\n"), (0, "a\nb\n"))

    def test_upper_and_number(self):
        self.assertEqual(run(["--upper", "--number"], "a\nb\n"), (0, "1: A\n2: B\n"))

    def test_skip_blank_before_numbering(self):
        self.assertEqual(run(["--skip-blank", "--number"], "a\n\nb\n"), (0, "1: a\n2: b\n"))


if __name__ == "__main__":
    unittest.main()
