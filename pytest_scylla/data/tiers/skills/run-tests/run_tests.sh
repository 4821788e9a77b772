#!/usr/bin/env bash
# Run the project's tests with what is already installed: pytest when the project is set up
# for it and pytest is importable, else the standard library's unittest discovery.
# Never installs anything.
set -u
tests_dir=tests
[ -d "$tests_dir" ] || tests_dir=test
[ -d "$tests_dir" ] || tests_dir=.
uses_pytest=no
if [ -f pytest.ini ] || [ -f conftest.py ] || [ -f "$tests_dir/conftest.py" ]; then
    uses_pytest=yes
elif grep -qs "pytest" pyproject.toml setup.cfg tox.ini; then
    uses_pytest=yes
fi
if [ "$uses_pytest" = yes ] && python3 -c "import pytest" 2>/dev/null; then
    exec python3 -B -m pytest -q "$tests_dir"
fi
exec python3 -B -m unittest discover -s "$tests_dir" -v
