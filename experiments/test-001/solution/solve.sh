#!/usr/bin/env bash
# Oracle solution for test-001: run with the workspace as the current directory.
set -euo pipefail
printf 'print("Hello, World!")\n' > hello.py
