"""Pure functions over lists of lines (strings without their line endings)."""


def upper_lines(lines):
    """The lines in upper case."""
    return [line.upper() for line in lines]


def skip_blank(lines):
    """The lines that hold something other than whitespace."""
    return [line for line in lines if line.strip()]


def number_lines(lines, start=1):
    """The lines prefixed with their position, counting from `start`."""
    return [f"{index}: {line}" for index, line in enumerate(lines, start)]
