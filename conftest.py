"""Repository-wide test setup: only what every test directory needs.

pytester is declared here, in the root conftest, rather than with ``addopts = "-p pytester"``:
a plugin the tests need belongs with the tests, and an ``-o addopts=...`` given on the
command line (which replaces the ini's) no longer drops it.
"""

pytest_plugins = ["pytester"]
